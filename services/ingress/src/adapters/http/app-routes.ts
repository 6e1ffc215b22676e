import { LonghaulError } from "@longhaul/shared/errors";
import { readJson, sendJson } from "./http-io.js";
import { checkQueryParams } from "./query-params.js";
import { countAppOutcomes } from "../../core/app-outcomes.js";
import { appFromJson, appToJson, runStatusName } from "./json-mapping.js";
import type { RequestContext, Route } from "./router.js";
import type { RouteDeps } from "./route-deps.js";

/** Largest JSON body of the apps API: an app description is small. */
const MAX_APP_JSON_BYTES = 64 * 1024;

function appName(ctx: RequestContext): string {
  const name = ctx.params.app ?? "";
  if (!name) throw new LonghaulError("invalid_argument", "app name is required");
  return name;
}

/** Longest `?window_seconds=` of outcome counts: a day. */
const MAX_WINDOW_SECONDS = 86_400;

/** `?window_seconds=` of outcome counts, default an hour. */
function windowSeconds(ctx: RequestContext): number {
  checkQueryParams(ctx.query, "GET /v1/apps/{app}/outcomes", ["window_seconds"]);
  const raw = ctx.query.get("window_seconds");
  if (raw === null || raw === "") return 3600;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_WINDOW_SECONDS) {
    throw new LonghaulError("invalid_argument", `window_seconds must be an integer from 1 to ${MAX_WINDOW_SECONDS}`);
  }
  return Number(raw);
}

/**
 * `PUT|GET|DELETE /v1/apps/{app}`, `GET /v1/apps` (DESIGN.md "HTTP API"),
 * and `GET /v1/apps/{app}/outcomes` (runs of the last window by status).
 */
export function appRoutes(deps: RouteDeps): Route[] {
  const { apps } = deps.ports;
  const jsonLimit = Math.min(MAX_APP_JSON_BYTES, deps.limits.maxBodyBytes);
  return [
    {
      method: "GET",
      pattern: "/v1/apps",
      auth: true,
      scope: "read",
      handler: async (ctx) => {
        const list = await apps.listApps(ctx.caller, { signal: ctx.signal });
        sendJson(ctx.res, 200, { apps: list.map(appToJson) });
      },
    },
    {
      method: "GET",
      pattern: "/v1/apps/:app",
      auth: true,
      scope: "read",
      handler: async (ctx) => {
        const app = await apps.getApp(ctx.caller, appName(ctx), { signal: ctx.signal });
        sendJson(ctx.res, 200, appToJson(app));
      },
    },
    {
      // Holds the app's queue: runs are accepted and wait; calls in flight go on.
      method: "POST",
      pattern: "/v1/apps/:app/pause",
      auth: true,
      scope: "admin",
      handler: async (ctx) => {
        checkQueryParams(ctx.query, "POST /v1/apps/{app}/pause", []);
        sendJson(ctx.res, 200, appToJson(await apps.pauseApp(ctx.caller, appName(ctx), { signal: ctx.signal })));
      },
    },
    {
      method: "POST",
      pattern: "/v1/apps/:app/resume",
      auth: true,
      scope: "admin",
      handler: async (ctx) => {
        checkQueryParams(ctx.query, "POST /v1/apps/{app}/resume", []);
        sendJson(ctx.res, 200, appToJson(await apps.resumeApp(ctx.caller, appName(ctx), { signal: ctx.signal })));
      },
    },
    {
      method: "GET",
      pattern: "/v1/apps/:app/outcomes",
      auth: true,
      scope: "read",
      handler: async (ctx) => {
        const name = appName(ctx);
        // An unknown app is a 404, not an empty count.
        await apps.getApp(ctx.caller, name, { signal: ctx.signal });
        const outcomes = await countAppOutcomes(
          deps.ports.runs,
          ctx.caller,
          { app: name, windowSeconds: windowSeconds(ctx), now: deps.now(), statusName: runStatusName },
          { signal: ctx.signal },
        );
        sendJson(ctx.res, 200, {
          app: outcomes.app,
          since: outcomes.since.toISOString(),
          counts: outcomes.counts,
          total: outcomes.total,
          capped: outcomes.capped,
        });
      },
    },
    {
      method: "PUT",
      pattern: "/v1/apps/:app",
      auth: true,
      scope: "admin",
      handler: async (ctx) => {
        const name = appName(ctx);
        const app = appFromJson(name, await readJson(ctx.req, jsonLimit));
        const res = await apps.putApp(ctx.caller, app);
        const headers: Record<string, string> = res.created ? { location: `/v1/apps/${encodeURIComponent(name)}` } : {};
        sendJson(ctx.res, res.created ? 201 : 200, appToJson(res.app), headers);
      },
    },
    {
      method: "DELETE",
      pattern: "/v1/apps/:app",
      auth: true,
      scope: "admin",
      handler: async (ctx) => {
        await apps.deleteApp(ctx.caller, appName(ctx));
        ctx.res.writeHead(204);
        ctx.res.end();
      },
    },
  ];
}
