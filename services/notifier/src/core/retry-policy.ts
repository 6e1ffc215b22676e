import type { SendResult } from "./ports.js";

/** What one attempt's result means for its delivery. */
export type Verdict = "delivered" | "retry" | "stop";

/**
 * Decides from one attempt's result (DESIGN.md, Webhooks): 2xx is delivered;
 * network errors, timeouts, 408, 429 and 5xx are worth another try; 3xx is a
 * failure that is never followed (a redirect could lead anywhere, including a
 * private address); 410 Gone and every other 4xx fail at once, since the same
 * request will get the same answer; a refused target (forbidden address)
 * fails at once too.
 */
export function classify(result: SendResult): { verdict: Verdict; reason: string | null } {
  switch (result.kind) {
    case "network":
      return { verdict: "retry", reason: `network error: ${result.message}` };
    case "timeout":
      return { verdict: "retry", reason: `timed out: ${result.message}` };
    case "refused":
      return { verdict: "stop", reason: `refused: ${result.message}` };
    case "response":
      return classifyStatus(result.statusCode);
  }
}

function classifyStatus(status: number): { verdict: Verdict; reason: string | null } {
  if (status >= 200 && status < 300) return { verdict: "delivered", reason: null };
  if (status >= 300 && status < 400) return { verdict: "stop", reason: `HTTP ${status}: redirects are not followed` };
  if (status === 410) return { verdict: "stop", reason: "HTTP 410: the receiver is gone" };
  if (status === 408 || status === 429 || status >= 500) return { verdict: "retry", reason: `HTTP ${status}` };
  return { verdict: "stop", reason: `HTTP ${status}` };
}

/** Jitter applied to each scheduled delay: ±10 %. */
export const JITTER = 0.1;

/** Retry-After asking for longer than this is held to it, so a receiver cannot park a delivery for ever. */
export const MAX_RETRY_AFTER_MS = 24 * 3600 * 1000;

/**
 * Milliseconds to wait before the next attempt of a series, or null when
 * the series has used every attempt of `scheduleSeconds`. `attemptsInSeries`
 * counts the attempts already made (≥ 1); entry i of the schedule is the
 * delay before attempt i + 1. `random` is in [0, 1) (Math.random in
 * production). A later Retry-After wins over the schedule (RFC 9110 §10.2.3).
 */
export function nextDelayMs(
  scheduleSeconds: readonly number[],
  attemptsInSeries: number,
  random: () => number,
  retryAfterMs: number | null = null,
): number | null {
  const base = scheduleSeconds[attemptsInSeries];
  if (base === undefined) return null;
  const scheduled = withJitter(base * 1000, random);
  if (retryAfterMs !== null && retryAfterMs > scheduled) return Math.min(retryAfterMs, MAX_RETRY_AFTER_MS);
  return scheduled;
}

/** A delay moved by up to ±{@link JITTER} of itself, so retries of many runs spread out. */
export function withJitter(ms: number, random: () => number): number {
  return Math.max(0, Math.round(ms * (1 + (random() * 2 - 1) * JITTER)));
}

/**
 * Reads a Retry-After header: delay-seconds or an HTTP date. Null when absent
 * or unreadable; a date in the past is 0.
 */
export function parseRetryAfter(value: string | null | undefined, now: Date): number | null {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // An HTTP date names a weekday and a month; Date.parse alone would read "-5" as a year.
  if (!/[a-z]/i.test(trimmed)) return null;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now.getTime());
}
