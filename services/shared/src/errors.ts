import { Metadata, status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";

/**
 * Stable error codes of Longhaul, shared by every transport. Each maps to one
 * gRPC status and one HTTP status (see {@link grpcStatusOf} and {@link httpStatusOf}).
 */
export type ErrorCode =
  | "invalid_argument"
  | "unauthenticated"
  | "not_found"
  | "already_exists"
  | "conflict"
  | "unprocessable"
  | "payload_too_large"
  | "resource_exhausted"
  | "unavailable"
  | "deadline_exceeded"
  | "internal";

const grpcStatusByCode: Record<ErrorCode, GrpcStatus> = {
  invalid_argument: GrpcStatus.INVALID_ARGUMENT,
  unauthenticated: GrpcStatus.UNAUTHENTICATED,
  not_found: GrpcStatus.NOT_FOUND,
  already_exists: GrpcStatus.ALREADY_EXISTS,
  conflict: GrpcStatus.FAILED_PRECONDITION,
  unprocessable: GrpcStatus.FAILED_PRECONDITION,
  payload_too_large: GrpcStatus.RESOURCE_EXHAUSTED,
  resource_exhausted: GrpcStatus.RESOURCE_EXHAUSTED,
  unavailable: GrpcStatus.UNAVAILABLE,
  deadline_exceeded: GrpcStatus.DEADLINE_EXCEEDED,
  internal: GrpcStatus.INTERNAL,
};

const httpStatusByCode: Record<ErrorCode, number> = {
  invalid_argument: 400,
  unauthenticated: 401,
  not_found: 404,
  already_exists: 409,
  conflict: 409,
  unprocessable: 422,
  payload_too_large: 413,
  resource_exhausted: 429,
  unavailable: 503,
  deadline_exceeded: 504,
  internal: 500,
};

/** Trailer that carries the Longhaul code across gRPC, where statuses are coarser. */
export const ERROR_CODE_METADATA_KEY = "longhaul-error-code";
const RETRY_AFTER_METADATA_KEY = "longhaul-retry-after";

export interface LonghaulErrorOptions {
  cause?: unknown;
  /** Seconds a client should wait before trying again (429, 503). */
  retryAfterSeconds?: number;
}

/** The one error type of Longhaul: a stable code, a message safe to show, a kept cause. */
export class LonghaulError extends Error {
  override readonly name = "LonghaulError";
  readonly retryAfterSeconds: number | undefined;

  constructor(
    readonly code: ErrorCode,
    message: string,
    options: LonghaulErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  /**
   * Normalises anything thrown into a LonghaulError. gRPC errors keep their
   * code; anything else becomes `internal` with the original kept as cause.
   */
  static from(err: unknown): LonghaulError {
    if (err instanceof LonghaulError) return err;
    if (isServiceError(err)) return fromServiceError(err);
    return new LonghaulError("internal", "internal error", { cause: err });
  }
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as ServiceError).code === "number" && "metadata" in err;
}

const codeByGrpcStatus: Partial<Record<GrpcStatus, ErrorCode>> = {
  [GrpcStatus.INVALID_ARGUMENT]: "invalid_argument",
  [GrpcStatus.UNAUTHENTICATED]: "unauthenticated",
  [GrpcStatus.NOT_FOUND]: "not_found",
  [GrpcStatus.ALREADY_EXISTS]: "already_exists",
  [GrpcStatus.FAILED_PRECONDITION]: "conflict",
  [GrpcStatus.RESOURCE_EXHAUSTED]: "resource_exhausted",
  [GrpcStatus.UNAVAILABLE]: "unavailable",
  [GrpcStatus.DEADLINE_EXCEEDED]: "deadline_exceeded",
  [GrpcStatus.PERMISSION_DENIED]: "unauthenticated",
};

function fromServiceError(err: ServiceError): LonghaulError {
  const carried = err.metadata?.get(ERROR_CODE_METADATA_KEY)[0];
  const code =
    typeof carried === "string" && carried in httpStatusByCode
      ? (carried as ErrorCode)
      : (codeByGrpcStatus[err.code] ?? "internal");
  const retryAfter = Number(err.metadata?.get(RETRY_AFTER_METADATA_KEY)[0] ?? NaN);
  const message = code === "internal" ? "internal error" : err.details || err.message;
  return new LonghaulError(code, message, {
    cause: err,
    retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : undefined,
  });
}

/** The gRPC status a code is sent with. */
export function grpcStatusOf(code: ErrorCode): GrpcStatus {
  return grpcStatusByCode[code];
}

/** The HTTP status a code is answered with. */
export function httpStatusOf(code: ErrorCode): number {
  return httpStatusByCode[code];
}

/** Turns a LonghaulError into the error object grpc-js sends, code kept in trailers. */
export function toServiceError(err: LonghaulError): Partial<ServiceError> {
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_METADATA_KEY, err.code);
  if (err.retryAfterSeconds !== undefined) {
    metadata.set(RETRY_AFTER_METADATA_KEY, String(err.retryAfterSeconds));
  }
  return { code: grpcStatusOf(err.code), details: err.message, metadata };
}

/** The JSON body of an HTTP error answer. */
export function errorBody(err: LonghaulError): { error: { code: ErrorCode; message: string } } {
  return { error: { code: err.code, message: err.message } };
}
