import type { AppSettings, AttemptOutcome, RunErrorCode } from "./model.js";

/** What to do once an attempt has ended. */
export type Decision =
  | { kind: "succeeded" }
  | { kind: "retry"; delaySeconds: number; errorCode: RunErrorCode; errorMessage: string }
  | { kind: "final"; status: "failed" | "timed_out"; errorCode: RunErrorCode; errorMessage: string };

/** Statuses that say the app did not process the request (issue 3). */
const UNPROCESSED_STATUSES = new Set([429, 502, 503, 504]);
/** Retry-After beyond this is not waited for: the run fails instead. */
const MAX_RETRY_AFTER_SECONDS = 3600;

function classify(outcome: AttemptOutcome): { errorCode: RunErrorCode; message: string; unprocessed: boolean } {
  if (outcome.statusCode > 0) {
    return {
      errorCode: "app_error",
      message: outcome.errorMessage || `app answered ${outcome.statusCode}`,
      unprocessed: UNPROCESSED_STATUSES.has(outcome.statusCode),
    };
  }
  switch (outcome.errorCode) {
    case "connect_error":
      // The connection was never made: the app cannot have seen the request.
      return { errorCode: "connect_error", message: outcome.errorMessage || "could not connect", unprocessed: true };
    case "timeout":
      return { errorCode: "timeout", message: outcome.errorMessage || "the app did not answer in time", unprocessed: false };
    case "invoker_lost":
      // The invoker died with the connection; the app lost it too. Retried
      // like an unprocessed call so that no run is lost with its invoker.
      return { errorCode: "invoker_lost", message: outcome.errorMessage || "the invoker holding the call was lost", unprocessed: true };
    case "response_too_large":
      return { errorCode: "response_too_large", message: outcome.errorMessage, unprocessed: false };
    default:
      return { errorCode: "connect_error", message: outcome.errorMessage || outcome.errorCode, unprocessed: false };
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
 * Decides the run's next step after an attempt: success on 2xx; a retry when
 * attempts remain and the failure is safe to retry (the app cannot have
 * processed it, or the app is idempotent); otherwise a final state.
 */
export function decide(
  app: AppSettings,
  attempt: number,
  maxAttempts: number,
  outcome: AttemptOutcome,
  random: () => number = Math.random,
): Decision {
  if (outcome.statusCode >= 200 && outcome.statusCode < 300 && !outcome.errorCode) return { kind: "succeeded" };
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
