import { isSuccessStatus } from "@longhaul/shared/domain";
import type { AppSettings, AttemptOutcome, RunErrorCode } from "./model.js";

/** What to do once an attempt has ended. */
export type Decision =
  | { kind: "succeeded" }
  | { kind: "retry"; delaySeconds: number; errorCode: RunErrorCode; errorMessage: string }
  | { kind: "final"; status: "failed" | "timed_out"; errorCode: RunErrorCode; errorMessage: string };

/**
 * Statuses that are the app's own refusal: it answered without doing the
 * work (429 Too Many Requests, 503 Service Unavailable). 502 and 504 are not
 * among them: a proxy in front of the app may have forwarded the request.
 */
const REFUSED_STATUSES = new Set([429, 503]);
/** Retry-After beyond this is not waited for: the run fails instead. */
const MAX_RETRY_AFTER_SECONDS = 3600;

/**
 * Names the failure and says whether the app provably never took the
 * request (`unprocessed`): only then may a run of an app not declared
 * idempotent be sent again. A request that may have reached the app is
 * never repeated for such an app, whatever happened after it was sent.
 */
function classify(outcome: AttemptOutcome): { errorCode: RunErrorCode; message: string; unprocessed: boolean } {
  if (outcome.statusCode > 0) {
    return {
      errorCode: "app_error",
      message: outcome.errorMessage || `app answered ${outcome.statusCode}`,
      unprocessed: REFUSED_STATUSES.has(outcome.statusCode),
    };
  }
  switch (outcome.errorCode) {
    case "connect_error":
      // DNS, TCP or TLS failed before a connection existed: nothing was sent.
      return { errorCode: "connect_error", message: outcome.errorMessage || "could not connect", unprocessed: true };
    case "timeout":
      return { errorCode: "timeout", message: outcome.errorMessage || "the app did not answer in time", unprocessed: false };
    case "response_too_large":
      return { errorCode: "response_too_large", message: outcome.errorMessage, unprocessed: false };
    case "interrupted":
    case "invoker_lost":
    default:
      // The call was cut after it was sent (connection reset, invoker lost,
      // drain deadline): the app may have done the work.
      return { errorCode: "interrupted", message: outcome.errorMessage || outcome.errorCode || "the call was interrupted", unprocessed: false };
  }
}

/**
 * Exponential backoff with ±20 % jitter, capped, and never sooner than the
 * app's Retry-After. `attempt` is the attempt that just ended (1-based).
 */
export function backoffSeconds(app: AppSettings, attempt: number, retryAfterSeconds: number, random: () => number): number {
  const base = Math.min(app.maxBackoffSeconds, app.initialBackoffSeconds * 2 ** (attempt - 1));
  const jittered = base * (0.8 + 0.4 * random());
  return Math.max(jittered, retryAfterSeconds);
}

/**
 * An attempt that succeeded: the app answered 2xx and nothing went wrong
 * after. No policy can change that outcome.
 */
export function isSuccess(outcome: { statusCode: number; errorCode: string }): boolean {
  return isSuccessStatus(outcome.statusCode) && !outcome.errorCode;
}

/**
 * Decides the run's next step after an attempt: success on 2xx; a retry when
 * attempts remain and the failure is safe to retry (the app provably never
 * took the request, or the app is declared idempotent); otherwise a final state.
 */
export function decide(
  app: AppSettings,
  attempt: number,
  maxAttempts: number,
  outcome: AttemptOutcome,
  random: () => number = Math.random,
): Decision {
  if (isSuccess(outcome)) return { kind: "succeeded" };
  const { errorCode, message, unprocessed } = classify(outcome);
  const retryable = (unprocessed || app.idempotent) && errorCode !== "response_too_large";
  if (retryable && attempt < maxAttempts && outcome.retryAfterSeconds <= MAX_RETRY_AFTER_SECONDS) {
    return {
      kind: "retry",
      delaySeconds: backoffSeconds(app, attempt, outcome.retryAfterSeconds, random),
      errorCode,
      errorMessage: message,
    };
  }
  return { kind: "final", status: errorCode === "timeout" ? "timed_out" : "failed", errorCode, errorMessage: message };
}
