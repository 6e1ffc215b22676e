/**
 * The longest a run's call may be held, and its default timeout: 12 hours
 * (DESIGN.md "Run lifecycle"). Per-app and per-request timeouts are bounded
 * by it; a sync pass-through call too.
 */
export const MAX_RUN_TIMEOUT_SECONDS = 12 * 60 * 60;

/** {@link MAX_RUN_TIMEOUT_SECONDS} in milliseconds. */
export const MAX_RUN_TIMEOUT_MS = MAX_RUN_TIMEOUT_SECONDS * 1000;

/**
 * The success rule of a call to an app or to a webhook receiver: any 2xx
 * status (RFC 9110 §15.3). Anything else, or no answer, is a failure.
 */
export function isSuccessStatus(statusCode: number): boolean {
  return statusCode >= 200 && statusCode < 300;
}

/**
 * The longest a run may wait to start: an app's `queue_ttl_seconds` and a
 * run's own queue deadline are bounded by it, as a delayed start is
 * (`X-Longhaul-Delay`). 30 days.
 */
export const MAX_QUEUE_TTL_SECONDS = 30 * 24 * 60 * 60;
