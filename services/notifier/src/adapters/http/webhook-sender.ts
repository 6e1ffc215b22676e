import { lookup as dnsLookup } from "node:dns/promises";
import type { LookupAddress } from "node:dns";
import { isIP } from "node:net";
import { Agent, request } from "undici";
import { context, contextFromCarrier, trace, traceCarrier } from "@longhaul/shared/telemetry";
import { isForbiddenAddress, validateWebhookUrl } from "@longhaul/shared/egress";
import type { SendResult, WebhookRequest, WebhookSender } from "../../core/ports.js";

/** Resolves a host name to every address it has (dns.lookup with `all`). */
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

/** Options of {@link createWebhookSender}. */
export interface WebhookSenderOptions {
  /** Let webhooks reach loopback and private addresses. @default false */
  allowPrivate: boolean;
  /** Bounds one POST from connect to the last byte read. */
  timeoutMs: number;
  /** Bytes of the answer read before the connection is dropped. */
  maxResponseBytes: number;
  /** Bytes of the answer kept as its excerpt. @default 1024 */
  excerptBytes?: number;
  /** @default dns.lookup(host, { all: true }) */
  resolve?: Resolver;
}

const defaultResolve: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

type Pinned = { address: string; family: number };

/** The code of the error the guarded lookup fails a connection with. */
const EGRESS_REFUSED = "LONGHAUL_EGRESS_REFUSED";

/**
 * Checks where a webhook would go, after resolution: every address the name
 * has must be allowed (a name with one private address among public ones is
 * refused), and the first is the one connected to.
 */
async function pinTarget(host: string, options: WebhookSenderOptions): Promise<Pinned | { refused: string }> {
  const family = isIP(host);
  const addresses = family ? [{ address: host, family }] : await (options.resolve ?? defaultResolve)(host);
  if (addresses.length === 0) return { refused: `${host} has no address` };
  if (!options.allowPrivate) {
    const bad = addresses.find((a) => isForbiddenAddress(a.address));
    if (bad) return { refused: `${host} resolves to a private or reserved address (${bad.address})` };
  }
  const first = addresses[0]!;
  return { address: first.address, family: first.family };
}

/**
 * One agent for every webhook, whose connections are made only to addresses
 * checked when the connection is made: its lookup resolves the name, applies
 * the egress rules and hands the socket the address it checked, so a second
 * DNS answer (rebinding) cannot lead it elsewhere. TLS still verifies the
 * URL's host name. A connection is kept alive and reused for the next webhook
 * to the same origin (issue 11: a connection, and a TLS handshake, per
 * webhook cost the notifier more than the rest of a delivery).
 */
function guardedAgent(options: WebhookSenderOptions): Agent {
  return new Agent({
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    connectTimeout: options.timeoutMs,
    connect: {
      lookup: ((hostname: string, opts: { all?: boolean }, callback: (...args: unknown[]) => void) => {
        pinTarget(hostname.replace(/^\[|\]$/g, ""), options).then(
          (pinned) => {
            if ("refused" in pinned) return callback(Object.assign(new Error(pinned.refused), { code: EGRESS_REFUSED }));
            // Node ≥ 20 asks for every address (`all`) when autoSelectFamily is on.
            if (opts?.all) callback(null, [pinned]);
            else callback(null, pinned.address, pinned.family);
          },
          (err: unknown) => callback(err),
        );
      }) as never,
    },
  });
}

/** The egress refusal inside an undici error, if that is what failed it. */
function refusal(err: unknown): string | undefined {
  for (let e = err as { code?: string; message?: string; cause?: unknown } | undefined, i = 0; e && i < 4; e = e.cause as typeof e, i++) {
    if (e.code === EGRESS_REFUSED) return e.message;
  }
  return undefined;
}

/** `promise`, or the signal's reason once it aborts (getaddrinfo itself cannot be cancelled). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function describe(err: unknown): { kind: "timeout" | "network"; message: string } {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e?.code ?? e?.cause?.code;
  const message = [code, e?.message ?? String(err)].filter(Boolean).join(": ");
  const timedOut =
    e?.name === "TimeoutError" ||
    code === "UND_ERR_HEADERS_TIMEOUT" ||
    code === "UND_ERR_BODY_TIMEOUT" ||
    code === "UND_ERR_CONNECT_TIMEOUT" ||
    code === "ETIMEDOUT";
  return { kind: timedOut ? "timeout" : "network", message };
}

/**
 * POSTs webhooks with undici, each attempt bounded in time and in what it
 * reads, never following redirects, and connected only to an address checked
 * against the SSRF rules at that moment (DESIGN.md: "resolved and checked
 * again at delivery").
 */
export function createWebhookSender(options: WebhookSenderOptions): WebhookSender {
  const excerptBytes = options.excerptBytes ?? 1024;
  const agent = guardedAgent(options);

  async function send(req: WebhookRequest): Promise<SendResult> {
    let url: URL;
    try {
      url = validateWebhookUrl(req.url, { allowPrivate: options.allowPrivate });
    } catch (err) {
      return { kind: "refused", message: err instanceof Error ? err.message : String(err) };
    }
    const signal = AbortSignal.timeout(options.timeoutMs);
    // An address literal never reaches the agent's lookup: checked here.
    const literal = url.hostname.replace(/^\[|\]$/g, "");
    if (isIP(literal) && !options.allowPrivate && isForbiddenAddress(literal)) {
      return { kind: "refused", message: `${literal} is a private or reserved address` };
    }

    const headers = { ...req.headers };
    // Inside the caller's span when there is one, else in the run's trace.
    const ctx = trace.getSpan(context.active()) ? context.active() : contextFromCarrier(req.traceparent);
    // With the OpenTelemetry SDK running, undici's instrumentation adds the
    // traceparent of its client span; without it, pass the run's own on.
    if (req.traceparent && !traceCarrier(ctx).traceparent) headers.traceparent = req.traceparent;

    return context.with(ctx, async () => {
        let res;
        try {
          res = await request(url, { method: "POST", headers, body: req.body, dispatcher: agent, signal });
        } catch (err) {
          const refused = refusal(err);
          return refused ? { kind: "refused" as const, message: refused } : describe(err);
        }
        const chunks: Buffer[] = [];
        let received = 0;
        let bodyError: string | undefined;
        try {
          if (options.maxResponseBytes > 0) {
            for await (const chunk of res.body as AsyncIterable<Buffer>) {
              const take = Math.min(chunk.length, options.maxResponseBytes - received);
              chunks.push(chunk.subarray(0, take));
              received += take;
              // Leaving the loop destroys the stream: an endless answer costs at most the cap.
              if (received >= options.maxResponseBytes) break;
            }
          }
        } catch (err) {
          bodyError = `reading the answer: ${describe(err).message}`;
        } finally {
          // Drops the connection when the answer was cut at the cap (a receiver
          // that keeps sending is cut off); a whole answer leaves it for reuse.
          if (!res.body.readableEnded) res.body.destroy();
        }
        const retryAfter = res.headers["retry-after"];
        return {
          kind: "response" as const,
          statusCode: res.statusCode,
          retryAfter: Array.isArray(retryAfter) ? (retryAfter[0] ?? null) : (retryAfter ?? null),
          excerpt: Buffer.concat(chunks).subarray(0, excerptBytes).toString("utf8"),
          ...(bodyError ? { bodyError } : {}),
        };
    });
  }

  return { send, close: () => agent.close() };
}
