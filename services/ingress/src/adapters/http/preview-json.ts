import type { runsPb } from "@longhaul/shared/proto";
import { bodyPreview } from "../../core/body-preview.js";
import { maskHeaders, maskQuery } from "@longhaul/shared/domain";
import { runStatusName } from "./json-mapping.js";

/**
 * The JSON of what a person reads about a run's request and response
 * (`GET /v1/runs/{id}/request`, `GET /v1/runs/{id}/result?format=preview`):
 * secrets masked (@longhaul/shared/domain secret-mask.ts), bodies capped (core/body-preview.ts).
 * Field names follow json-mapping.ts: snake_case, absent values `null`.
 */

/** The request stored for a run. `body` is null when no body is stored. */
export function runInputToJson(input: runsPb.GetRunInputResponse, previewBytes: number) {
  const req = input.request;
  const preview = input.bodyStored ? bodyPreview(req?.body ?? new Uint8Array(), previewBytes) : undefined;
  return {
    run_id: input.runId,
    method: req?.method ?? "",
    path: req?.path ?? "/",
    query: maskQuery(req?.query ?? ""),
    headers: maskHeaders(req?.headers ?? []),
    body_stored: input.bodyStored,
    body_size: preview?.size ?? null,
    body_encoding: preview?.encoding ?? null,
    body: preview?.body ?? null,
    body_preview_truncated: preview?.truncated ?? false,
  };
}

/** The app's stored answer, for reading. */
export function resultPreviewToJson(res: runsPb.GetRunResultResponse, previewBytes: number) {
  const preview = bodyPreview(res.body, previewBytes);
  return {
    run_id: res.runId,
    status: runStatusName(res.status),
    status_code: res.statusCode === 0 ? null : res.statusCode,
    content_type: res.contentType === "" ? null : res.contentType,
    headers: maskHeaders(res.headers),
    body_size: preview.size,
    body_encoding: preview.encoding,
    body: preview.body,
    body_preview_truncated: preview.truncated,
    // The app sent more than the stored limit: even the stored body is partial.
    body_truncated: res.bodyTruncated,
    body_gone: res.bodyGone,
  };
}
