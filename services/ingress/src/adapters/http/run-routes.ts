import { UUID } from "@longhaul/shared/domain";
import { LonghaulError } from "@longhaul/shared/errors";
import type { runsPb } from "@longhaul/shared/proto";
import { verifyResultUrl } from "@longhaul/shared/result-url";
import { DEFAULT_PREVIEW_BYTES } from "../../core/body-preview.js";
import { readJson, sendJson } from "./http-io.js";
import { checkQueryParams } from "./query-params.js";
import { resultPreviewToJson, runInputToJson } from "./preview-json.js";
import {
  isFinished,
  listRunsRequestFromQuery,
  resultToJson,
  retryRunsRequestFromJson,
  runListToJson,
  runStatusName,
  runToJson,
} from "./json-mapping.js";
import type { RequestContext, Route } from "./router.js";
import type { RouteDeps } from "./route-deps.js";
import { streamRunEvents } from "./run-events.js";

/** Largest body of `POST /v1/runs/retry`: a filter is small. */
const MAX_FILTER_JSON_BYTES = 16 * 1024;
/** Longest `?wait=` of a long-poll (proto: GetRunRequest.wait_seconds, max 60). */
const MAX_WAIT_SECONDS = 60;

/** The `{id}` of a run route; anything that is not a UUID cannot be a run: 404. */
export function runIdParam(ctx: RequestContext): string {
  const id = ctx.params.id ?? "";
  if (!UUID.test(id)) throw new LonghaulError("not_found", `run ${id} not found`);
  return id.toLowerCase();
}

function parseWait(raw: string | null): number {
  if (raw === null || raw === "") return 0;
  if (!/^\d+$/.test(raw) || Number(raw) > MAX_WAIT_SECONDS) {
    throw new LonghaulError("invalid_argument", `wait must be an integer from 0 to ${MAX_WAIT_SECONDS}`);
  }
  return Number(raw);
}

/** The control API over runs: `/v1/runs...` (DESIGN.md "HTTP API"). */
export function runRoutes(deps: RouteDeps): Route[] {
  const { runs } = deps.ports;
  return [
    {
      // Bulk recovery after an outage: retries every finished run that matches
      // the filter and was never retried; answers how many, with their ids.
      method: "POST",
      pattern: "/v1/runs/retry",
      auth: true,
      scope: "invoke",
      handler: async (ctx) => {
        checkQueryParams(ctx.query, "POST /v1/runs/retry", []);
        const req = retryRunsRequestFromJson(await readJson(ctx.req, MAX_FILTER_JSON_BYTES));
        const res = await runs.retryRuns(ctx.caller, req, { signal: ctx.signal });
        if (res.retried > 0) deps.metrics.runsAccepted.inc({ existing: "false" }, res.retried);
        sendJson(ctx.res, 200, { retried: res.retried, run_ids: res.runIds, more: res.more });
      },
    },
    {
      method: "GET",
      pattern: "/v1/runs",
      auth: true,
      scope: "read",
      handler: async (ctx) => {
        const res = await runs.listRuns(ctx.caller, listRunsRequestFromQuery(ctx.query), { signal: ctx.signal });
        sendJson(ctx.res, 200, runListToJson(res));
      },
    },
    {
      method: "GET",
      pattern: "/v1/runs/:id",
      auth: true,
      scope: "read",
      handler: async (ctx) => {
        const id = runIdParam(ctx);
        checkQueryParams(ctx.query, "GET /v1/runs/{id}", ["wait"]);
        const wait = parseWait(ctx.query.get("wait"));
        const run = await runs.getRun(ctx.caller, id, wait, { signal: ctx.signal });
        sendJson(ctx.res, 200, runToJson(run));
      },
    },
    {
      // Erasure on demand (personal data): the finished run's bodies and
      // headers go at once; the run, its times and status stay.
      method: "DELETE",
      pattern: "/v1/runs/:id",
      auth: true,
      scope: "admin",
      handler: async (ctx) => {
        await runs.eraseRun(ctx.caller, runIdParam(ctx), { signal: ctx.signal });
        ctx.res.writeHead(204);
        ctx.res.end();
      },
    },
    {
      method: "GET",
      pattern: "/v1/runs/:id/result",
      // Either a key, or a signed link (expires + signature) handed out in webhooks.
      auth: false,
      handler: (ctx) => (ctx.query.has("signature") ? signedResult(deps, ctx) : keyedResult(deps, ctx)),
    },
    {
      method: "POST",
      pattern: "/v1/runs/:id/cancel",
      auth: true,
      scope: "invoke",
      handler: async (ctx) => {
        const run = await runs.cancelRun(ctx.caller, runIdParam(ctx), { signal: ctx.signal });
        sendJson(ctx.res, 200, runToJson(run));
      },
    },
    {
      method: "POST",
      pattern: "/v1/runs/:id/retry",
      auth: true,
      scope: "invoke",
      handler: async (ctx) => {
        const runId = await runs.retryRun(ctx.caller, runIdParam(ctx));
        deps.metrics.runsAccepted.inc({ existing: "false" });
        sendJson(ctx.res, 202, { run_id: runId }, { location: `/v1/runs/${runId}` });
      },
    },
    {
      method: "GET",
      pattern: "/v1/runs/:id/request",
      auth: true,
      scope: "read",
      handler: async (ctx) => {
        const input = await runs.getRunInput(ctx.caller, runIdParam(ctx), { signal: ctx.signal });
        sendJson(ctx.res, 200, runInputToJson(input, previewBytes(ctx)));
      },
    },
    {
      method: "GET",
      pattern: "/v1/runs/:id/events",
      auth: true,
      scope: "read",
      handler: (ctx) => streamRunEvents(deps, ctx, runIdParam(ctx)),
    },
  ];
}

async function keyedResult(deps: RouteDeps, ctx: RequestContext): Promise<void> {
  const caller = await deps.authenticator.authenticate(ctx.req.headers.authorization);
  const res = await deps.ports.runs.getRunResult(caller, runIdParam(ctx), { signal: ctx.signal });
  requireFinished(res.runId, res.status);
  const format = resultFormat(ctx);
  if (format === "json") sendJson(ctx.res, 200, resultToJson(res), STORED_BODY_HEADERS);
  else if (format === "preview") sendJson(ctx.res, 200, resultPreviewToJson(res, previewBytes(ctx)), STORED_BODY_HEADERS);
  else sendRawResult(ctx, res);
}

async function signedResult(deps: RouteDeps, ctx: RequestContext): Promise<void> {
  const id = runIdParam(ctx);
  const rejection = verifyResultUrl(id, ctx.query, deps.resultUrlKey, deps.now());
  if (rejection === "expired") throw new LonghaulError("unauthenticated", "this result link has expired");
  if (rejection !== null) throw new LonghaulError("unauthenticated", "invalid result link signature");
  const stored = await deps.ports.signedResults.getResult(id, { signal: ctx.signal });
  requireFinished(id, stored.status);
  const res: runsPb.GetRunResultResponse = {
    runId: stored.runId,
    status: stored.status,
    statusCode: stored.statusCode,
    // The internal read carries the content type but not the other stored headers.
    headers: stored.contentType ? [{ name: "content-type", value: stored.contentType }] : [],
    body: stored.body,
    contentType: stored.contentType,
    bodyTruncated: stored.bodyTruncated,
    bodyGone: stored.bodyGone,
  };
  const format = resultFormat(ctx);
  if (format === "json") sendJson(ctx.res, 200, resultToJson(res), STORED_BODY_HEADERS);
  else if (format === "preview") sendJson(ctx.res, 200, resultPreviewToJson(res, previewBytes(ctx)), STORED_BODY_HEADERS);
  else sendRawResult(ctx, res);
}

/** A result exists only once the run is finished; before that it is a 409, not an empty 200. */
function requireFinished(runId: string, status: runsPb.RunStatus): void {
  if (!isFinished(status)) {
    throw new LonghaulError("conflict", `run ${runId} is ${runStatusName(status)}: no result yet`);
  }
}

/**
 * `?format=json` asks for the JSON envelope (whole body, base64),
 * `?format=preview` for what a person reads (secrets masked, body capped,
 * text when UTF-8); no format (or `raw`) gets the raw body.
 */
function resultFormat(ctx: RequestContext): "raw" | "json" | "preview" {
  const format = ctx.query.get("format") ?? "raw";
  if (format === "raw" || format === "json" || format === "preview") return format;
  throw new LonghaulError("invalid_argument", "format must be raw, json or preview");
}

/** Largest `?preview_bytes=` of a body preview. */
const MAX_PREVIEW_BYTES = 1024 * 1024;

/** `?preview_bytes=` (default 64 KiB): how much of a body a preview holds. */
function previewBytes(ctx: RequestContext): number {
  const raw = ctx.query.get("preview_bytes");
  if (raw === null || raw === "") return DEFAULT_PREVIEW_BYTES;
  if (!/^\d+$/.test(raw) || Number(raw) > MAX_PREVIEW_BYTES) {
    throw new LonghaulError("invalid_argument", `preview_bytes must be an integer from 0 to ${MAX_PREVIEW_BYTES}`);
  }
  return Number(raw);
}

/**
 * The app's stored body as it answered, under its content type; the app's
 * status travels in `X-Longhaul-Status-Code` so that a 200 here always means
 * "here is the stored result", whatever the app answered. A body that is
 * gone (retention, erasure) is a 410 `result_gone`, not an empty 200.
 */
function sendRawResult(ctx: RequestContext, res: runsPb.GetRunResultResponse): void {
  // An empty body under the app's content type would read as the app's answer.
  if (res.bodyGone) {
    throw new LonghaulError(
      "result_gone",
      `the app's body of run ${res.runId} is no longer stored: it was dropped after the retention period, or erased (its status code and times remain on the run)`,
    );
  }
  const body = Buffer.from(res.body);
  const headers: Record<string, string | number> = {
    "content-type": res.contentType || "application/octet-stream",
    "content-length": body.length,
    "cache-control": "private, no-store",
    "x-longhaul-run-status": runStatusName(res.status),
    "x-longhaul-body-truncated": String(res.bodyTruncated),
  };
  if (res.statusCode) headers["x-longhaul-status-code"] = String(res.statusCode);
  ctx.res.writeHead(200, { ...headers, ...STORED_BODY_HEADERS, "content-disposition": `attachment; filename="${res.runId}"` });
  ctx.res.end(body);
}

/**
 * Headers of every answer that carries a stored app body (the raw result,
 * its JSON and preview forms, signed links): the app's bytes never run as a
 * page of Longhaul's origin. `nosniff` keeps browsers to the declared type,
 * the CSP `sandbox` gives any HTML an opaque origin with no script, and
 * `attachment` makes a browser download rather than render it. A sync
 * pass-through answer is the app's own and passes unchanged.
 */
const STORED_BODY_HEADERS = {
  "x-content-type-options": "nosniff",
  "content-security-policy": "sandbox",
  "content-disposition": "attachment",
} as const;
