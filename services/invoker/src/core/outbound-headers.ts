import type { HeaderPair } from "./ports.js";

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) and those the HTTP client computes
 * itself: passing them on would describe the client's connection, not ours.
 */
const DROPPED = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "expect",
  // The run's own trace context is injected with the call (by the undici
  // instrumentation, or by the upstream client without an exporter); a
  // stored one would make the app see two.
  "traceparent",
  "tracestate",
]);

/** Headers Longhaul sets itself on an async run's call; stored ones of these names are replaced. */
const RUN_HEADERS = new Set(["idempotency-key", "x-longhaul-run-id", "x-longhaul-attempt"]);

/**
 * The request headers a call may carry to the app. `Content-Length` is kept
 * only for a streamed body (`keepContentLength`); with a whole body in hand
 * the HTTP client computes it.
 */
export function passableHeaders(headers: HeaderPair[], keepContentLength = false): HeaderPair[] {
  const named = new Set<string>();
  // `Connection: foo` makes `foo` hop-by-hop too.
  for (const h of headers) {
    if (h.name.toLowerCase() === "connection") {
      for (const token of h.value.split(",")) named.add(token.trim().toLowerCase());
    }
  }
  return headers.filter((h) => {
    const n = h.name.toLowerCase();
    if (n === "content-length") return keepContentLength;
    return !DROPPED.has(n) && !named.has(n);
  });
}

/**
 * The headers of an async run's call: the stored ones plus the run's
 * identity, so the app can deduplicate a retried attempt (Idempotency-Key).
 */
export function runCallHeaders(stored: HeaderPair[], runId: string, attempt: number): HeaderPair[] {
  return [
    ...passableHeaders(stored).filter((h) => !RUN_HEADERS.has(h.name.toLowerCase())),
    { name: "Idempotency-Key", value: runId },
    { name: "X-Longhaul-Run-Id", value: runId },
    { name: "X-Longhaul-Attempt", value: String(attempt) },
  ];
}
