import { Agent, type Dispatcher } from "undici";
import { readUpTo } from "@longhaul/shared/body";
import type { EgressPolicy } from "@longhaul/shared/egress";
import { EGRESS_REFUSED, createGuardedAgent } from "@longhaul/shared/egress-agent";
import { injectTrace } from "@longhaul/shared/telemetry";
import type { HeaderPair, UpstreamPort, UpstreamRequest, UpstreamResult } from "../../core/ports.js";

/** Options of the Agent that carries every call to the apps. */
export interface UpstreamAgentOptions {
  /** Idle time before the first TCP keep-alive probe. @default 30000 */
  keepAliveInitialDelayMs?: number;
  /** Time to open a connection before it counts as a connect error. @default 10000 */
  connectTimeoutMs?: number;
  /**
   * Where apps may be: every connection's host is resolved and each of its
   * addresses checked, and the socket goes to the address checked (a second
   * DNS answer cannot lead it elsewhere). Unset: no check (tests of the client alone).
   */
  egress?: EgressPolicy;
}

/**
 * The undici Agent options. undici's `headersTimeout` / `bodyTimeout` default
 * to 300 s and would cut a call that legitimately takes hours, so both are
 * off: each call is bounded by its run's deadline (an AbortSignal) instead.
 * TCP keep-alive probes keep NATs and load balancers from dropping a
 * connection that carries no bytes for hours, and detect a dead peer.
 */
export function upstreamAgentOptions(o: UpstreamAgentOptions = {}): Agent.Options {
  return {
    headersTimeout: 0,
    bodyTimeout: 0,
    connect: {
      keepAlive: true,
      keepAliveInitialDelay: o.keepAliveInitialDelayMs ?? 30_000,
      timeout: o.connectTimeoutMs ?? 10_000,
    },
  };
}

export function createUpstreamAgent(o: UpstreamAgentOptions = {}): Agent {
  const options = upstreamAgentOptions(o);
  return o.egress ? createGuardedAgent(options, o.egress, { what: "app" }) : new Agent(options);
}

/** Header pairs as undici's flat `[name, value, ...]` list, which keeps repeated names. */
export function flatHeaders(headers: HeaderPair[]): string[] {
  return headers.flatMap((h) => [h.name, h.value]);
}

/** undici's response headers as pairs; repeated names (set-cookie) become several pairs. */
export function headerPairs(headers: Record<string, string | string[] | undefined>): HeaderPair[] {
  const out: HeaderPair[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) out.push({ name, value: v });
  }
  return out;
}

/** A short message naming what went wrong on the wire, e.g. `ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:1`. */
export function describeUpstreamError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // undici wraps socket errors; the interesting code is often on the cause.
  const cause = (err as { cause?: unknown }).cause;
  const inner = cause instanceof Error ? cause : err;
  const code = (inner as { code?: unknown }).code ?? (err as { code?: unknown }).code;
  const message = inner.message || err.message || inner.name;
  return typeof code === "string" ? `${code}: ${message}` : message;
}

export interface UpstreamClientOptions {
  agent: Dispatcher;
  /** Bytes of the response body kept; the rest is read and dropped. */
  maxResponseBytes: number;
}

/**
 * Makes an async run's call: the whole request body at once, the response
 * body read up to `maxResponseBytes` (the rest drained so the app sees its
 * answer consumed, and `bodyTruncated` set). Any failure before the whole
 * answer is read is a connect error when no connection was ever made (the
 * app cannot have seen the request), else an interruption (it may have),
 * unless the signal fired: then the run's owner decides (timeout, cancel,
 * lost lease, drain).
 */
export function createUpstreamClient(o: UpstreamClientOptions): UpstreamPort {
  return {
    // Not an async function on purpose: while the app works (for hours), a
    // call is undici's pending promise and one reaction, not a suspended
    // function with its frame (memory per held call).
    call(req: UpstreamRequest): Promise<UpstreamResult> {
      const { signal } = req;
      if (signal.aborted) return Promise.resolve({ kind: "aborted" });
      let pending: Promise<Dispatcher.ResponseData>;
      try {
        const headers = flatHeaders(req.headers);
        // The run.call span's context (when no instrumentation adds its own).
        injectTrace((name, value) => headers.push(name, value));
        pending = o.agent.request({
          ...originAndPath(req.url),
          method: (req.method || "GET").toUpperCase() as Dispatcher.HttpMethod,
          headers,
          body: req.body.byteLength > 0 ? Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength) : null,
          signal,
        });
      } catch (err) {
        return Promise.resolve(failure(err, signal));
      }
      return pending.then(
        (res) => readAnswer(res, o.maxResponseBytes, signal),
        (err: unknown) => failure(err, signal),
      );
    },
  };
}

/** Reads the answer's body up to `max` bytes, draining the rest. */
async function readAnswer(res: Dispatcher.ResponseData, max: number, signal: AbortSignal): Promise<UpstreamResult> {
  const { body, truncated, error } = await readUpTo(res.body, max, "drain");
  if (error) return failure(error, signal);
  return { kind: "response", statusCode: res.statusCode, headers: headerPairs(res.headers), body, bodyTruncated: truncated };
}

/**
 * Error codes raised before a connection to the app existed: name resolution,
 * TCP connect, TLS handshake (Node's and OpenSSL's codes), undici's connect
 * timeout, and requests undici refused to build. Whatever else fails, a
 * connection was open and the request may have been read by the app.
 */
const NEVER_CONNECTED = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EAI_FAIL",
  "EAI_NONAME",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "EADDRNOTAVAIL",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_INVALID_ARG",
  "UND_ERR_NOT_SUPPORTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "ERR_TLS_HANDSHAKE_TIMEOUT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "ERR_SSL_WRONG_VERSION_NUMBER",
  // The egress guard refused the app's address (guardedConnector): nothing was sent.
  EGRESS_REFUSED,
]);

/** The error codes on an error and its causes, outermost first. */
function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
  }
  return codes;
}

/** True when the failure happened before any connection to the app existed. */
export function neverConnected(err: unknown): boolean {
  return errorCodes(err).some((c) => NEVER_CONNECTED.has(c));
}

/** A failure before the whole answer was read: the signal's owner decides when it fired, else the wire says. */
function failure(err: unknown, signal: AbortSignal): UpstreamResult {
  if (signal.aborted) return { kind: "aborted" };
  const message = describeUpstreamError(err);
  return neverConnected(err) ? { kind: "connect_error", message } : { kind: "interrupted", message };
}

/** Splits an absolute URL into undici's `origin` and `path` (path keeps the query). */
export function originAndPath(url: string): { origin: string; path: string } {
  const u = new URL(url);
  return { origin: u.origin, path: `${u.pathname}${u.search}` };
}
