import { once } from "node:events";
import { LonghaulError } from "@longhaul/shared/errors";
import { RunAttr, trace } from "@longhaul/shared/telemetry";
import { appResponseHeaders, headerPairs, prefersAsync } from "../../core/app-request.js";
import {
  buildInvokeHead,
  buildSubmitRunRequest,
  parseRunOptions,
  type GatewayCall,
  type RunOptions,
} from "../../core/run-options.js";
import { readBody, sendJson } from "./http-io.js";
import type { RequestContext, Route } from "./router.js";
import type { RouteDeps } from "./route-deps.js";

/** Slack on top of the app's timeout for a sync call's gRPC deadline (brief: timeout + 30 s). */
const SYNC_DEADLINE_SLACK_SECONDS = 30;

/**
 * `ANY /{project}/{app}/{path...}`: an async submit (202 + run_id) or a sync
 * pass-through streamed both ways (DESIGN.md "HTTP API").
 */
export function gatewayRoutes(deps: RouteDeps): Route[] {
  const handler = async (ctx: RequestContext): Promise<void> => {
    const { project, app } = ctx.params as { project: string; app: string };
    // Another project's path is a 404, never a 403: keys do not learn what exists.
    if (project !== ctx.caller.project) throw new LonghaulError("not_found", `project ${project} not found`);
    const call: GatewayCall = {
      method: ctx.req.method ?? "GET",
      path: ctx.rest,
      rawQuery: ctx.rawQuery,
      headers: headerPairs(ctx.req.rawHeaders),
    };
    const options = parseRunOptions(call, deps.now());
    if (options.async) await submitAsync(deps, ctx, app, call, options);
    else await passThrough(deps, ctx, app, call, options);
  };
  return [
    { method: "*", pattern: "/:project/:app/*", auth: true, scope: "invoke", handler },
    // Cerebrium's URL shape (`https://api.cortex.cerebrium.ai/v4/{project}/{app}/{function}`):
    // code written from its docs works by changing only the host.
    { method: "*", pattern: "/v4/:project/:app/*", auth: true, scope: "invoke", handler },
  ];
}

/** Stores the run (the scheduler commits before it answers) and answers 202 `{"run_id"}`. */
async function submitAsync(
  deps: RouteDeps,
  ctx: RequestContext,
  app: string,
  call: GatewayCall,
  options: RunOptions,
): Promise<void> {
  const body = await readBody(ctx.req, deps.limits.maxBodyBytes);
  const request = buildSubmitRunRequest(app, call, body, options);
  // No client signal here: once sent, let the submit finish; with an
  // Idempotency-Key a retrying client gets the same run either way.
  const res = await deps.ports.runs.submitRun(ctx.caller, request);
  deps.metrics.runsAccepted.inc({ existing: String(res.existing) });
  // The request's server span is the root of the run's trace: name the run on it.
  trace.getActiveSpan()?.setAttributes({ [RunAttr.runId]: res.runId, [RunAttr.app]: app, [RunAttr.project]: ctx.caller.project });
  const headers: Record<string, string> = { location: `/v1/runs/${res.runId}` };
  if (prefersAsync(call.headers)) headers["preference-applied"] = "respond-async";
  sendJson(ctx.res, 202, { run_id: res.runId }, headers);
}

/**
 * Sync pass-through: the app's URL from AppService, then one Invoke stream
 * that carries the body in and the answer out as it arrives. Backpressure
 * holds both ways (grpc-js `drain` in the invoker client, HTTP `drain` here),
 * and a client that goes away cancels the call.
 */
async function passThrough(
  deps: RouteDeps,
  ctx: RequestContext,
  appName: string,
  call: GatewayCall,
  options: RunOptions,
): Promise<void> {
  const app = await deps.ports.apps.getApp(ctx.caller, appName, { signal: ctx.signal });
  const head = buildInvokeHead(ctx.caller.project, app, call, options);
  deps.metrics.streamsStarted.inc({ kind: "sync" });
  const { res } = ctx;
  const parts = deps.ports.invoker.invoke(
    head,
    ctx.req as AsyncIterable<Buffer>,
    head.timeoutSeconds + SYNC_DEADLINE_SLACK_SECONDS,
    ctx.signal,
  );
  for await (const part of parts) {
    if (part.kind === "head") {
      if (res.headersSent) continue;
      const flat = appResponseHeaders(part.headers).flatMap((h) => [h.name, h.value]);
      res.writeHead(part.statusCode, flat);
      // The client sees the status now, not when the first body byte comes.
      res.flushHeaders();
    } else {
      if (!res.headersSent) {
        throw new LonghaulError("internal", "internal error", { cause: new Error("invoker sent body before head") });
      }
      if (!res.write(part.chunk)) await once(res, "drain", { signal: ctx.signal });
    }
  }
  if (!res.headersSent) {
    throw new LonghaulError("unavailable", "the invoker ended the call without an answer");
  }
  res.end();
}
