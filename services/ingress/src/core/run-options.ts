import { LonghaulError } from "@longhaul/shared/errors";
import type { invokerPb, runsPb } from "@longhaul/shared/proto";
import { MAX_QUEUE_TTL_SECONDS, parseLabelsHeader, type Labels } from "@longhaul/shared/domain";
import { appRequestHeaders, headerValue, joinAppUrl, prefersAsync, splitQuery } from "./app-request.js";

/** 12 hours: the longest a call may be held (DESIGN.md "Run lifecycle"). */
export const MAX_TIMEOUT_SECONDS = 12 * 60 * 60;
/** The longest `X-Longhaul-Delay` accepted: 30 days. */
export const MAX_DELAY_SECONDS = 30 * 24 * 60 * 60;
const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/** A client's call below `/{project}/{app}`, as it arrived. */
export interface GatewayCall {
  method: string;
  /** Path below the app, raw as sent, starting with "/". */
  path: string;
  /** Raw query as sent, without "?". */
  rawQuery: string;
  headers: runsPb.Header[];
}

/** Longhaul's per-request options, read from `X-Longhaul-*` headers or the query. */
export interface RunOptions {
  async: boolean;
  /** 0: the app's timeout. */
  timeoutSeconds: number;
  priority: number;
  notBefore: Date | undefined;
  /** Seconds from submit within which the run must start, else it expires; 0: only the app's queue TTL. */
  queueTtlSeconds: number;
  webhookUrl: string;
  idempotencyKey: string;
  /** `X-Longhaul-Labels: team=ml,job=42` (every such header, joined). */
  labels: Labels;
}

function badRequest(message: string): LonghaulError {
  return new LonghaulError("invalid_argument", message);
}

/** An integer within bounds, or a 400 naming the option. */
function parseIntOption(raw: string, name: string, min: number, max: number): number {
  const trimmed = raw.trim();
  if (!/^[+-]?\d+$/.test(trimmed)) throw badRequest(`${name} must be an integer`);
  const n = Number(trimmed);
  if (n < min || n > max) throw badRequest(`${name} must be between ${min} and ${max}`);
  return n;
}

/** `async=true|1|` (bare) means async, `false|0` sync; anything else is a 400, not a silent guess. */
function parseAsyncFlag(params: URLSearchParams): boolean | undefined {
  if (!params.has("async")) return undefined;
  const v = params.get("async")!.toLowerCase();
  if (v === "" || v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw badRequest("async must be true or false");
}

/** RFC 3339 date-time with an explicit offset, as `X-Longhaul-Not-Before` requires. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * Reads the per-request options. A header wins over its query twin; when the
 * header is present the query parameter is not read at all, so an app's own
 * `timeout` or `priority` parameter can always be passed through untouched.
 */
export function parseRunOptions(call: GatewayCall, now: Date): RunOptions {
  const { params } = splitQuery(call.rawQuery);
  const header = (name: string) => headerValue(call.headers, name);
  const pick = (headerName: string, queryName: string | undefined) => {
    const h = header(headerName);
    if (h !== undefined) return { raw: h, name: headerName };
    const q = queryName === undefined ? null : params.get(queryName);
    return q === null ? undefined : { raw: q, name: `${queryName} query parameter` };
  };

  const asyncFlag = parseAsyncFlag(params) ?? prefersAsync(call.headers);

  const timeout = pick("X-Longhaul-Timeout", "timeout");
  const timeoutSeconds = timeout ? parseIntOption(timeout.raw, timeout.name, 1, MAX_TIMEOUT_SECONDS) : 0;

  const prio = pick("X-Longhaul-Priority", "priority");
  const priority = prio ? parseIntOption(prio.raw, prio.name, -100, 100) : 0;

  const notBeforeRaw = header("X-Longhaul-Not-Before");
  const delayRaw = header("X-Longhaul-Delay");
  if (notBeforeRaw !== undefined && delayRaw !== undefined) {
    throw badRequest("X-Longhaul-Not-Before and X-Longhaul-Delay exclude each other");
  }
  let notBefore: Date | undefined;
  if (notBeforeRaw !== undefined) {
    const t = notBeforeRaw.trim();
    notBefore = new Date(t);
    if (!RFC3339.test(t) || Number.isNaN(notBefore.getTime())) {
      throw badRequest("X-Longhaul-Not-Before must be an RFC 3339 date-time with an offset");
    }
  } else if (delayRaw !== undefined) {
    const delay = parseIntOption(delayRaw, "X-Longhaul-Delay", 0, MAX_DELAY_SECONDS);
    notBefore = delay > 0 ? new Date(now.getTime() + delay * 1000) : undefined;
  }

  const queueTtl = pick("X-Longhaul-Queue-Ttl", "queueTtl");
  const queueTtlSeconds = queueTtl ? parseIntOption(queueTtl.raw, queueTtl.name, 1, MAX_QUEUE_TTL_SECONDS) : 0;
  if (notBefore && queueTtlSeconds > 0 && notBefore.getTime() >= now.getTime() + queueTtlSeconds * 1000) {
    throw badRequest(`${queueTtl!.name} ends before the run may start (X-Longhaul-Not-Before or X-Longhaul-Delay)`);
  }

  const idempotencyKey = (header("Idempotency-Key") ?? "").trim();
  if (idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw badRequest(`Idempotency-Key is longer than ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`);
  }

  const labelHeaders = call.headers.filter((h) => h.name.toLowerCase() === "x-longhaul-labels").map((h) => h.value);
  const labels = parseLabelsHeader(labelHeaders);

  return {
    async: asyncFlag,
    timeoutSeconds,
    priority,
    notBefore,
    queueTtlSeconds,
    // The scheduler checks the URL (http(s), no private targets) at submit.
    webhookUrl: params.get("webhookEndpoint") ?? "",
    idempotencyKey,
    labels,
  };
}

/** The SubmitRunRequest of an async call: the app's request as sent, minus Longhaul's parts. */
export function buildSubmitRunRequest(
  app: string,
  call: GatewayCall,
  body: Buffer,
  options: RunOptions,
): runsPb.SubmitRunRequest {
  return {
    app,
    request: {
      method: call.method,
      path: call.path,
      query: splitQuery(call.rawQuery).appQuery,
      headers: appRequestHeaders(call.headers),
      body,
    },
    webhookUrl: options.webhookUrl,
    timeoutSeconds: options.timeoutSeconds,
    priority: options.priority,
    idempotencyKey: options.idempotencyKey,
    notBefore: options.notBefore,
    queueTtlSeconds: options.queueTtlSeconds,
    labels: options.labels,
    // Chosen by the scheduler client, the same on every try (scheduler-client.ts).
    runId: "",
  };
}

/**
 * The head of a sync pass-through call. Longhaul-only options that make no
 * sense without a stored run are refused rather than silently dropped.
 */
export function buildInvokeHead(
  project: string,
  app: { name: string; url: string; timeoutSeconds: number },
  call: GatewayCall,
  options: RunOptions,
): invokerPb.InvokeHead {
  if (options.webhookUrl) throw badRequest("webhookEndpoint needs an async call (async=true)");
  if (options.notBefore) throw badRequest("X-Longhaul-Not-Before and X-Longhaul-Delay need an async call");
  // A sync call starts at once or fails: a queue deadline has nothing to bound.
  if (options.queueTtlSeconds) throw badRequest("X-Longhaul-Queue-Ttl (queueTtl) needs an async call (async=true)");
  // A sync call is recorded without labels: refusing them says so at once.
  if (Object.keys(options.labels).length > 0) throw badRequest("X-Longhaul-Labels needs an async call (async=true)");
  const appTimeout = app.timeoutSeconds > 0 ? app.timeoutSeconds : MAX_TIMEOUT_SECONDS;
  // As for async runs, a request may shorten the app's timeout, never lengthen it.
  const timeoutSeconds = options.timeoutSeconds > 0 ? Math.min(options.timeoutSeconds, appTimeout) : appTimeout;
  return {
    url: joinAppUrl(app.url, call.path, splitQuery(call.rawQuery).appQuery),
    method: call.method,
    headers: appRequestHeaders(call.headers, { keepIdempotencyKey: true }),
    timeoutSeconds,
    project,
    app: app.name,
  };
}
