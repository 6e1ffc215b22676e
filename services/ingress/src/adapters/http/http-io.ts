import type { IncomingMessage, ServerResponse } from "node:http";
import { LonghaulError, errorBody, httpStatusOf, type QuotaState } from "@longhaul/shared/errors";
import type { Logger } from "@longhaul/shared/logger";
import { isTransportFailure } from "@longhaul/shared/grpc";
import { readUpTo } from "@longhaul/shared/body";

/**
 * Reads the whole body up to `limit` bytes; a larger one is a 413 before
 * anything is stored (the rest of the upload is read and dropped).
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? NaN);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const read = await readUpTo(req, limit, "stop");
  // The client went away mid-upload: nothing to store, nobody to answer.
  if (read.error) throw new LonghaulError("invalid_argument", "request body was cut off", { cause: read.error });
  if (read.truncated) {
    req.resume();
    throw tooLarge(limit);
  }
  return read.body;
}

function tooLarge(limit: number): LonghaulError {
  return new LonghaulError("payload_too_large", `request body is larger than ${limit} bytes`);
}

/** Reads and parses a JSON body; malformed JSON is a 400. */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const body = await readBody(req, limit);
  if (body.length === 0) throw new LonghaulError("invalid_argument", "a JSON body is required");
  try {
    return JSON.parse(body.toString("utf8")) as unknown;
  } catch {
    throw new LonghaulError("invalid_argument", "malformed JSON body");
  }
}

/** Sends a JSON answer. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

/** An error as it is answered: its status, the error to show, and the headers that go with it. */
export interface ErrorAnswer {
  status: number;
  /** The error as shown: transport details and internal causes replaced by a safe message. */
  shown: LonghaulError;
  headers: Record<string, string>;
}

/**
 * How an error is answered, whatever the body's shape (Longhaul's, or a
 * compatibility API's): the status of its code, `Retry-After` and the
 * RateLimit fields on a 429, `WWW-Authenticate` on a 401. Logs internal
 * errors with their cause (never shown) and unavailable dependencies.
 */
export function errorAnswer(res: ServerResponse, err: unknown, log: Logger): ErrorAnswer {
  const e = LonghaulError.from(err);
  if (e.code === "internal") log.error({ err: e.cause ?? err }, "internal error");
  else if (e.code === "unavailable") log.warn({ err: e.cause ?? err }, "dependency unavailable");
  const status = httpStatusOf(e.code);
  const shown = isTransportFailure(e) ? new LonghaulError(e.code, TRANSPORT_MESSAGES[e.code] ?? e.message) : e;
  const headers: Record<string, string> = {};
  if (e.retryAfterSeconds !== undefined && (status === 429 || status === 503)) {
    headers["retry-after"] = String(Math.max(0, Math.ceil(e.retryAfterSeconds)));
  } else if (status === 429) {
    headers["retry-after"] = "1";
  }
  if (status === 429 && e.quota) Object.assign(headers, rateLimitHeaders(e.quota));
  if (status === 401) headers["www-authenticate"] = 'Bearer realm="longhaul"';
  // A 413 or 401 may leave an upload unread: close instead of draining it.
  if (status === 413 || (!res.req.complete && status < 500)) headers["connection"] = "close";
  return { status, shown, headers };
}

/**
 * Answers an error as `{"error":{"code","message"}}` with the status of its
 * code. Unknown errors become a 500 "internal error" with the cause logged,
 * never shown. When the answer has already begun, the connection is cut so
 * the client sees a broken response rather than a silently short one.
 */
export function sendError(res: ServerResponse, err: unknown, log: Logger): void {
  const a = errorAnswer(res, err, log);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, a.status, errorBody(a.shown), a.headers);
}

/** What a client is told when a gRPC call failed in transport (addresses and resolver notes stay in the log). */
const TRANSPORT_MESSAGES: Partial<Record<LonghaulError["code"], string>> = {
  unavailable: "a Longhaul service is unavailable; try again",
  deadline_exceeded: "a Longhaul service did not answer in time",
};

/**
 * The `RateLimit-Policy` and `RateLimit` fields of the IETF httpapi draft
 * "RateLimit header fields for HTTP" (draft-ietf-httpapi-ratelimit-headers-10):
 * structured-field lists naming the policy (the limit's name), its quota `q`
 * and window `w` in seconds (a limit on what is held at once, such as runs
 * queued, has no window), what `r` remains and the seconds `t` until it resets.
 */
export function rateLimitHeaders(q: QuotaState): Record<string, string> {
  const name = `"${q.limit.replace(/[^a-z0-9_]/g, "")}"`;
  return {
    "ratelimit-policy": `${name};q=${Math.round(q.quota)}${q.windowSeconds !== undefined ? `;w=${Math.round(q.windowSeconds)}` : ""}`,
    ratelimit: `${name};r=${Math.max(0, Math.floor(q.remaining))};t=${Math.max(0, Math.ceil(q.resetSeconds))}`,
  };
}
