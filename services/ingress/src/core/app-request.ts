import type { runsPb } from "@longhaul/shared/proto";

/**
 * How a client's request becomes the request Longhaul makes to the app
 * (DESIGN.md "HTTP API"): `async` and `webhookEndpoint` leave the query,
 * hop-by-hop headers and Longhaul's own control headers leave the headers,
 * everything else reaches the app as sent.
 */

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus those a proxy must re-create itself. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
  "proxy-connection",
  // 100-continue is negotiated by each hop itself (Node answers it here).
  "expect",
]);

/** Query parameters that belong to Longhaul and never reach the app. */
export const LONGHAUL_QUERY_PARAMS = new Set(["async", "webhookEndpoint"]);

/** Prefix of Longhaul's control headers (X-Longhaul-Timeout, -Priority, ...). */
const CONTROL_PREFIX = "x-longhaul-";

/** The header names a proxy drops: the fixed hop-by-hop list and those named in `Connection`. */
function droppedByConnection(headers: readonly runsPb.Header[]): Set<string> {
  const named = new Set<string>();
  for (const h of headers) {
    if (h.name.toLowerCase() !== "connection") continue;
    for (const token of h.value.split(",")) {
      const t = token.trim().toLowerCase();
      if (t) named.add(t);
    }
  }
  return named;
}

/** True for a header a proxy never forwards, in either direction. */
function isHopByHop(lower: string, named: Set<string>): boolean {
  return HOP_BY_HOP.has(lower) || lower.startsWith("proxy-") || named.has(lower);
}

/** Node's flat `rawHeaders` ([name, value, name, value, ...]) as pairs, case and order kept. */
export function headerPairs(rawHeaders: readonly string[]): runsPb.Header[] {
  const out: runsPb.Header[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    out.push({ name: rawHeaders[i]!, value: rawHeaders[i + 1]! });
  }
  return out;
}

/** The first value of a header, by case-insensitive name. */
export function headerValue(headers: readonly runsPb.Header[], name: string): string | undefined {
  const lower = name.toLowerCase();
  return headers.find((h) => h.name.toLowerCase() === lower)?.value;
}

/** Whether a `Prefer` header asks for `respond-async` (RFC 7240). */
export function prefersAsync(headers: readonly runsPb.Header[]): boolean {
  return headers.some(
    (h) => h.name.toLowerCase() === "prefer" && preferTokens(h.value).some((t) => t.toLowerCase() === "respond-async"),
  );
}

function preferTokens(value: string): string[] {
  return value
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
}

/**
 * The headers to send to the app: minus hop-by-hop ones, `Authorization` (the
 * Longhaul key is not the app's), `Idempotency-Key` (Longhaul's on async
 * calls; a sync call passes it on, Longhaul does not use it there), the
 * `respond-async` preference, `X-Longhaul-*` control headers, and the W3C
 * trace headers, which Longhaul's own spans re-create so the app joins the
 * same trace as a child of the run.
 */
export function appRequestHeaders(
  headers: readonly runsPb.Header[],
  options: { keepIdempotencyKey?: boolean } = {},
): runsPb.Header[] {
  const named = droppedByConnection(headers);
  const out: runsPb.Header[] = [];
  for (const h of headers) {
    const lower = h.name.toLowerCase();
    if (isHopByHop(lower, named)) continue;
    if (lower === "authorization") continue;
    if (lower === "idempotency-key" && !options.keepIdempotencyKey) continue;
    if (lower === "traceparent" || lower === "tracestate") continue;
    if (lower.startsWith(CONTROL_PREFIX)) continue;
    if (lower === "prefer") {
      const rest = preferTokens(h.value).filter((t) => t.toLowerCase() !== "respond-async");
      if (rest.length > 0) out.push({ name: h.name, value: rest.join(", ") });
      continue;
    }
    out.push({ name: h.name, value: h.value });
  }
  return out;
}

/** The app's response headers to pass back to the client: minus hop-by-hop ones. */
export function appResponseHeaders(headers: readonly runsPb.Header[]): runsPb.Header[] {
  const named = droppedByConnection(headers);
  return headers.filter((h) => !isHopByHop(h.name.toLowerCase(), named));
}

/** Decodes a query name as a form would (`+` is a space); a malformed escape stays as sent. */
function decodeQueryName(raw: string): string {
  const spaced = raw.replace(/\+/g, " ");
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}

/** A raw query split into what the app gets and Longhaul's own parameters. */
export interface SplitQuery {
  /** The query for the app, byte for byte as sent minus Longhaul's parameters; no leading "?". */
  appQuery: string;
  /** Every parameter, decoded, for reading options. */
  params: URLSearchParams;
}

/**
 * Removes `async` and `webhookEndpoint` from a raw query and keeps every
 * other piece exactly as sent (order, encoding, empty pieces): the app sees
 * the query the client wrote.
 */
export function splitQuery(rawQuery: string): SplitQuery {
  if (rawQuery === "") return { appQuery: "", params: new URLSearchParams() };
  const kept = rawQuery.split("&").filter((piece) => {
    const eq = piece.indexOf("=");
    const name = decodeQueryName(eq === -1 ? piece : piece.slice(0, eq));
    return !LONGHAUL_QUERY_PARAMS.has(name);
  });
  return { appQuery: kept.join("&"), params: new URLSearchParams(rawQuery) };
}

/** The app URL of a call: one rule for sync and async calls (shared/domain). */
export { joinAppUrl } from "@longhaul/shared/domain";
