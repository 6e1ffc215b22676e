/**
 * Stable error codes of Longhaul, shared by every transport. Each maps to one
 * gRPC status (`grpcStatusOf` in `@longhaul/shared/grpc`) and one HTTP status
 * ({@link httpStatusOf}). This module imports no transport, so core code that
 * throws a LonghaulError loads nothing but this file.
 */
export type ErrorCode =
  | "invalid_argument"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  | "already_exists"
  | "conflict"
  | "result_gone"
  | "unprocessable"
  | "payload_too_large"
  | "resource_exhausted"
  | "unavailable"
  | "deadline_exceeded"
  | "internal";

const httpStatusByCode: Record<ErrorCode, number> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  already_exists: 409,
  conflict: 409,
  result_gone: 410,
  unprocessable: 422,
  payload_too_large: 413,
  resource_exhausted: 429,
  unavailable: 503,
  deadline_exceeded: 504,
  internal: 500,
};

/**
 * The project limit a `resource_exhausted` error is about, as the IETF
 * httpapi draft "RateLimit header fields for HTTP"
 * (draft-ietf-httpapi-ratelimit-headers-10) describes a quota policy:
 * `quota` units per `windowSeconds`, `remaining` of them left, the window
 * resetting in `resetSeconds`.
 */
export interface QuotaState {
  /** The limit's name: `submits_per_second`, `max_queued` or `max_watch_streams`. */
  limit: string;
  quota: number;
  /** The policy's window; omitted for limits that are not per time (a count held at once). */
  windowSeconds?: number;
  remaining: number;
  resetSeconds: number;
}

export interface LonghaulErrorOptions {
  cause?: unknown;
  /** Seconds a client should wait before trying again (429, 503). */
  retryAfterSeconds?: number;
  /** For `resource_exhausted` over a project limit: which limit, and its state. */
  quota?: QuotaState;
}

/** The one error type of Longhaul: a stable code, a message safe to show, a kept cause. */
export class LonghaulError extends Error {
  override readonly name = "LonghaulError";
  readonly retryAfterSeconds: number | undefined;
  readonly quota: QuotaState | undefined;

  constructor(
    readonly code: ErrorCode,
    message: string,
    options: LonghaulErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.quota = options.quota;
  }

  /**
   * Normalises anything thrown into a LonghaulError: a LonghaulError is kept;
   * a lost or refused database connection becomes `unavailable` (503 with
   * Retry-After: the client should try again, nothing was stored); anything
   * else becomes `internal` with the original kept as cause. Errors of a
   * transport are mapped at its edge first (`fromGrpcError` in
   * `@longhaul/shared/grpc`), so that their codes survive.
   */
  static from(err: unknown): LonghaulError {
    if (err instanceof LonghaulError) return err;
    if (isDatabaseOutage(err)) {
      return new LonghaulError("unavailable", "the database is unavailable; try again", { cause: err, retryAfterSeconds: 2 });
    }
    return new LonghaulError("internal", "internal error", { cause: err });
  }
}

/**
 * True for an error that says the database cannot be reached now, as pg
 * reports it: a connection exception (SQLSTATE class 08), a server shutting
 * down or starting (57P01-57P03), a refused or reset socket, a connection
 * ended under a query, or a pool that could not connect in time.
 */
export function isDatabaseOutage(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null | undefined;
  const code = typeof e?.code === "string" ? e.code : "";
  if (/^08/.test(code) || code === "57P01" || code === "57P02" || code === "57P03" || code === "ECONNREFUSED" || code === "ECONNRESET") {
    return true;
  }
  const message = typeof e?.message === "string" ? e.message : "";
  return /connect ECONNREFUSED|Connection terminated|timeout exceeded when trying to connect|the database system is (shutting down|starting up)/i.test(message);
}

/** True for the string of a known {@link ErrorCode}. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(httpStatusByCode, value);
}

/** The HTTP status a code is answered with. */
export function httpStatusOf(code: ErrorCode): number {
  return httpStatusByCode[code];
}

/** The JSON body of an HTTP error answer. */
export function errorBody(err: LonghaulError): { error: { code: ErrorCode; message: string; limit?: string } } {
  return { error: { code: err.code, message: err.message, ...(err.quota ? { limit: err.quota.limit } : {}) } };
}
