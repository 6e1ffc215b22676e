import { Metadata, status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { LonghaulError, isErrorCode, type ErrorCode, type QuotaState } from "../errors.js";

/** Trailer that carries the Longhaul code across gRPC, where statuses are coarser. */
export const ERROR_CODE_METADATA_KEY = "longhaul-error-code";
const RETRY_AFTER_METADATA_KEY = "longhaul-retry-after";
/** Trailer with the JSON {@link QuotaState} of a refusal over a project limit. */
const QUOTA_METADATA_KEY = "longhaul-quota";

const grpcStatusByCode: Record<ErrorCode, GrpcStatus> = {
  invalid_argument: GrpcStatus.INVALID_ARGUMENT,
  unauthenticated: GrpcStatus.UNAUTHENTICATED,
  permission_denied: GrpcStatus.PERMISSION_DENIED,
  not_found: GrpcStatus.NOT_FOUND,
  already_exists: GrpcStatus.ALREADY_EXISTS,
  conflict: GrpcStatus.FAILED_PRECONDITION,
  // Gone: the thing was there and is no more (its code travels in the trailer).
  result_gone: GrpcStatus.NOT_FOUND,
  unprocessable: GrpcStatus.FAILED_PRECONDITION,
  payload_too_large: GrpcStatus.RESOURCE_EXHAUSTED,
  resource_exhausted: GrpcStatus.RESOURCE_EXHAUSTED,
  unavailable: GrpcStatus.UNAVAILABLE,
  deadline_exceeded: GrpcStatus.DEADLINE_EXCEEDED,
  internal: GrpcStatus.INTERNAL,
};

const codeByGrpcStatus: Partial<Record<GrpcStatus, ErrorCode>> = {
  [GrpcStatus.INVALID_ARGUMENT]: "invalid_argument",
  [GrpcStatus.UNAUTHENTICATED]: "unauthenticated",
  [GrpcStatus.NOT_FOUND]: "not_found",
  [GrpcStatus.ALREADY_EXISTS]: "already_exists",
  [GrpcStatus.FAILED_PRECONDITION]: "conflict",
  [GrpcStatus.RESOURCE_EXHAUSTED]: "resource_exhausted",
  [GrpcStatus.UNAVAILABLE]: "unavailable",
  [GrpcStatus.DEADLINE_EXCEEDED]: "deadline_exceeded",
  [GrpcStatus.PERMISSION_DENIED]: "permission_denied",
};

/** The gRPC status a code is sent with. */
export function grpcStatusOf(code: ErrorCode): GrpcStatus {
  return grpcStatusByCode[code];
}

/** True for an error grpc-js produced for a call: a status code and trailers. */
export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as ServiceError).code === "number" && "metadata" in err;
}

/**
 * Normalises anything a gRPC call threw into a LonghaulError. A status sent by
 * a Longhaul service keeps its exact code (carried in the `longhaul-error-code`
 * trailer) and its Retry-After; grpc-js's own failures (no connection,
 * deadline) map by status; anything else is {@link LonghaulError.from}'s.
 */
export function fromGrpcError(err: unknown): LonghaulError {
  if (!isServiceError(err)) return LonghaulError.from(err);
  const carried = err.metadata?.get(ERROR_CODE_METADATA_KEY)[0];
  const code = isErrorCode(carried) ? carried : (codeByGrpcStatus[err.code] ?? "internal");
  const retryAfter = Number(err.metadata?.get(RETRY_AFTER_METADATA_KEY)[0] ?? NaN);
  const message = code === "internal" ? "internal error" : err.details || err.message;
  return new LonghaulError(code, message, {
    cause: err,
    retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : undefined,
    quota: quotaOf(err.metadata?.get(QUOTA_METADATA_KEY)[0]),
  });
}

/**
 * True when a LonghaulError came from grpc-js itself (no connection, deadline)
 * rather than from a Longhaul service, which always sends its code in the
 * `longhaul-error-code` trailer.
 */
export function isTransportFailure(err: LonghaulError): boolean {
  return isServiceError(err.cause) && err.cause.metadata.get(ERROR_CODE_METADATA_KEY).length === 0;
}

/**
 * A failure of the transport for a call carried some other way than its own
 * gRPC call (a message on a stream that broke, or got no answer in time):
 * its cause is shaped as grpc-js's own errors, without the code trailer, so
 * {@link isTransportFailure} holds and it is shown to clients with the same
 * generic text as a unary call's failure. `detail` stays in the cause, for logs.
 */
export function transportError(code: "unavailable" | "deadline_exceeded", detail: string, cause?: unknown): LonghaulError {
  const status = grpcStatusOf(code);
  const err = Object.assign(new Error(`${status} ${GrpcStatus[status]}: ${detail}`, { cause }), { code: status, details: detail, metadata: new Metadata() });
  return new LonghaulError(code, detail, { cause: err });
}

/** Turns a LonghaulError into the error object grpc-js sends, code kept in trailers. */
export function toServiceError(err: LonghaulError): Partial<ServiceError> {
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_METADATA_KEY, err.code);
  if (err.retryAfterSeconds !== undefined) {
    metadata.set(RETRY_AFTER_METADATA_KEY, String(err.retryAfterSeconds));
  }
  if (err.quota) metadata.set(QUOTA_METADATA_KEY, JSON.stringify(err.quota));
  return { code: grpcStatusOf(err.code), details: err.message, metadata };
}

/** The quota trailer back into a {@link QuotaState}; anything malformed is ignored (the status still says 429). */
function quotaOf(raw: unknown): QuotaState | undefined {
  if (typeof raw !== "string") return undefined;
  try {
    const q = JSON.parse(raw) as Partial<QuotaState>;
    if (typeof q.limit !== "string" || typeof q.quota !== "number" || typeof q.remaining !== "number" || typeof q.resetSeconds !== "number") {
      return undefined;
    }
    return { limit: q.limit, quota: q.quota, remaining: q.remaining, resetSeconds: q.resetSeconds, ...(typeof q.windowSeconds === "number" ? { windowSeconds: q.windowSeconds } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * A LonghaulError as a message of a stream carries it (`SubmitError` of
 * SchedulerInternalService/SubmitRuns): everything {@link toServiceError}
 * puts in a call's status and trailers, so that the error read back by
 * {@link errorFromFields} is the one {@link fromGrpcError} would have read.
 */
export interface ErrorFields {
  code: string;
  message: string;
  retryAfterSeconds?: number | undefined;
  /** JSON {@link QuotaState}, or "". */
  quotaJson: string;
}

/** The fields of a stream message's error, as {@link toServiceError} would have sent them. */
export function errorToFields(err: LonghaulError): ErrorFields {
  return {
    code: err.code,
    message: err.message,
    retryAfterSeconds: err.retryAfterSeconds,
    quotaJson: err.quota ? JSON.stringify(err.quota) : "",
  };
}

/** A stream message's error back into the LonghaulError {@link fromGrpcError} makes of the same status. */
export function errorFromFields(f: ErrorFields): LonghaulError {
  const code = isErrorCode(f.code) ? f.code : "internal";
  const retryAfter = f.retryAfterSeconds;
  return new LonghaulError(code, code === "internal" ? "internal error" : f.message, {
    retryAfterSeconds: retryAfter !== undefined && Number.isFinite(retryAfter) ? retryAfter : undefined,
    quota: quotaOf(f.quotaJson || undefined),
  });
}
