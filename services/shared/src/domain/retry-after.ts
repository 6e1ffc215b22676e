/**
 * Reads an HTTP `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an
 * HTTP-date. Returns the milliseconds to wait from `now` (epoch ms), 0 for a
 * date already past, and undefined when the value is absent or unreadable.
 */
export function parseRetryAfterMs(value: string | null | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // An HTTP-date names a weekday and a month; Date.parse alone would read "-5" as a year.
  if (!/[a-z]/i.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
