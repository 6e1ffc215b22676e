/**
 * Parses an HTTP `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an
 * HTTP-date. Returns whole seconds to wait from `now`, 0 when absent or
 * unreadable, capped to fit the proto's int32.
 */
export function parseRetryAfter(value: string | undefined, now: number): number {
  if (!value) return 0;
  const v = value.trim();
  const MAX = 2_147_483_647;
  if (/^\d+$/.test(v)) return Math.min(Number(v), MAX);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return 0;
  return Math.min(Math.max(0, Math.ceil((at - now) / 1000)), MAX);
}
