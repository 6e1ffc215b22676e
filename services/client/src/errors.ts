/**
 * The one error of the client: an answer of the API that is not a success,
 * carrying the API's `code` (`not_found`, `resource_exhausted`, ...), the
 * HTTP status and, on a 429 or 503, the `Retry-After` in seconds.
 */
export class LonghaulApiError extends Error {
  override readonly name = "LonghaulApiError";

  constructor(
    /** The API's error code (`{"error":{"code"}}`), or `http_<status>` when the body was not Longhaul's JSON. */
    readonly code: string,
    message: string,
    /** The HTTP status; 0 when no answer came (the network failed). */
    readonly status: number,
    /** Seconds to wait before trying again, from `Retry-After`, when the answer had one. */
    readonly retryAfterSeconds?: number,
    /** On a 429: the limit that was hit (`submits_per_second`, `max_queued`, ...). */
    readonly limit?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Reads an error answer (any status ≥ 400). */
  static async fromResponse(res: Response): Promise<LonghaulApiError> {
    const text = await res.text().catch(() => "");
    const retryAfter = parseRetryAfter(res.headers.get("retry-after"));
    try {
      const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; limit?: unknown } };
      if (body.error && typeof body.error.code === "string") {
        return new LonghaulApiError(
          body.error.code,
          typeof body.error.message === "string" ? body.error.message : body.error.code,
          res.status,
          retryAfter,
          typeof body.error.limit === "string" ? body.error.limit : undefined,
        );
      }
    } catch {
      // Not Longhaul's JSON (a proxy's page, say): described by its status below.
    }
    const excerpt = text.trim().slice(0, 200);
    return new LonghaulApiError(`http_${res.status}`, `HTTP ${res.status}${excerpt ? `: ${excerpt}` : ""}`, res.status, retryAfter);
  }
}

/** `Retry-After` as seconds: a number, or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | null): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}
