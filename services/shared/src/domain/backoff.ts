/**
 * The delay before retry number `attempt` (1-based: the attempt that just
 * ended) of an exponential backoff: `initial × 2^(attempt-1)`, capped at `max`.
 * Units are the caller's.
 */
export function exponentialDelay(attempt: number, initial: number, max: number): number {
  return Math.min(max, initial * 2 ** Math.max(0, attempt - 1));
}

/**
 * `value` moved by up to ±`fraction` of itself (`0.2` is ±20 %), so retries
 * of many runs spread out instead of arriving together. `random` is in [0, 1).
 */
export function withJitter(value: number, fraction: number, random: () => number = Math.random): number {
  return Math.max(0, value * (1 + (random() * 2 - 1) * fraction));
}
