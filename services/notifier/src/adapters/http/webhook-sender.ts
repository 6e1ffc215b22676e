import { request } from "undici";
import { readUpTo } from "@longhaul/shared/body";
import { context, contextFromCarrier, injectTrace, instrumented, trace } from "@longhaul/shared/telemetry";
import { validateWebhookUrl, type AddressResolver, type EgressPolicy } from "@longhaul/shared/egress";
import { createGuardedAgent, egressRefusal } from "@longhaul/shared/egress-agent";
import type { SendResult, WebhookRequest, WebhookSender } from "../../core/ports.js";

/** Resolves a host name to every address it has (dns.lookup with `all`). */
export type Resolver = AddressResolver;

/** Options of {@link createWebhookSender}. */
export interface WebhookSenderOptions {
  /** Let webhooks reach loopback and private addresses (the URL check at send; `egress` says it at connect). @default false */
  allowPrivate: boolean;
  /**
   * Where a webhook may connect: the egress policy apps have too
   * (createEgressPolicy with webhookNetworks(allowPrivate) and Longhaul's own addresses).
   */
  egress: EgressPolicy;
  /** Bounds one POST from connect to the last byte read. */
  timeoutMs: number;
  /** Bytes of the answer read before the connection is dropped. */
  maxResponseBytes: number;
  /** Bytes of the answer kept as its excerpt. @default 1024 */
  excerptBytes?: number;
  /** @default dns.lookup(host, { all: true }) */
  resolve?: Resolver;
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
 * against the egress policy at that moment (DESIGN.md: "resolved and checked
 * again at delivery"), by the guard app calls go through too. One agent for
 * every webhook: a connection is kept alive and reused for the next webhook
 * to the same origin (a connection, and a TLS handshake, per webhook cost
 * more than the rest of a delivery).
 */
export function createWebhookSender(options: WebhookSenderOptions): WebhookSender {
  const excerptBytes = options.excerptBytes ?? 1024;
  const agent = createGuardedAgent(
    { headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs, connectTimeout: options.timeoutMs },
    options.egress,
    { what: "webhook", ...(options.resolve ? { resolve: options.resolve } : {}) },
  );

  async function send(req: WebhookRequest): Promise<SendResult> {
    let url: URL;
    try {
      url = validateWebhookUrl(req.url, { allowPrivate: options.allowPrivate });
    } catch (err) {
      return { kind: "refused", message: err instanceof Error ? err.message : String(err) };
    }
    const headers = { ...req.headers };
    // Inside the caller's span when there is one, else in the run's trace.
    const ctx = trace.getSpan(context.active()) ? context.active() : contextFromCarrier(req.traceparent);
    // With an exporter, undici's instrumentation adds the traceparent of its
    // client span. Without one, the attempt's own context goes; with no SDK
    // at all (no propagator), the run's stored traceparent.
    if (!instrumented()) {
      injectTrace((name, value) => (headers[name] = value), ctx);
      if (req.traceparent && !headers.traceparent) headers.traceparent = req.traceparent;
    }

    return context.with(ctx, async () => {
      // The attempt's deadline, cleared the moment the attempt ends. Not
      // AbortSignal.timeout: its timer outlives the attempt, and timeoutMs
      // later builds a TimeoutError (with its stack) and fires an abort event
      // for a request long done, so a burst of webhooks kept an otherwise
      // idle notifier busy for timeoutMs after it.
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(new DOMException("webhook attempt timed out", "TimeoutError")), options.timeoutMs);
      try {
        let res;
        try {
          res = await request(url, { method: "POST", headers, body: req.body, dispatcher: agent, signal: deadline.signal });
        } catch (err) {
          const refused = egressRefusal(err);
          return refused ? { kind: "refused" as const, message: refused } : describe(err);
        }
        // Stops at the cap: an endless answer costs at most that.
        const read = options.maxResponseBytes > 0 ? await readUpTo(res.body, options.maxResponseBytes, "stop") : undefined;
        const answer = read?.body ?? Buffer.alloc(0);
        const bodyError = read?.error ? `reading the answer: ${describe(read.error).message}` : undefined;
        // Drops the connection when the answer was cut at the cap (a receiver
        // that keeps sending is cut off); a whole answer leaves it for reuse.
        if (!res.body.readableEnded) res.body.destroy();
        const retryAfter = res.headers["retry-after"];
        return {
          kind: "response" as const,
          statusCode: res.statusCode,
          retryAfter: Array.isArray(retryAfter) ? (retryAfter[0] ?? null) : (retryAfter ?? null),
          excerpt: answer.subarray(0, excerptBytes).toString("utf8"),
          ...(bodyError ? { bodyError } : {}),
        };
      } finally {
        clearTimeout(timer);
      }
    });
  }

  return { send, close: () => agent.close() };
}
