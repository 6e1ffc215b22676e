import { LonghaulError } from "@longhaul/shared";
import { readJson, sendJson } from "./http-io.js";
import { appFromJson, appToJson } from "./json-mapping.js";
import type { RequestContext, Route } from "./router.js";
import type { RouteDeps } from "./route-deps.js";

/** Largest JSON body of the apps API: an app description is small. */
const MAX_APP_JSON_BYTES = 64 * 1024;

function appName(ctx: RequestContext): string {
  const name = ctx.params.app ?? "";
  if (!name) throw new LonghaulError("invalid_argument", "app name is required");
  return name;
}

/** `PUT|GET|DELETE /v1/apps/{app}`, `GET /v1/apps` (DESIGN.md "HTTP API"). */
export function appRoutes(deps: RouteDeps): Route[] {
  const { apps } = deps.ports;
  const jsonLimit = Math.min(MAX_APP_JSON_BYTES, deps.limits.maxBodyBytes);
  return [
    {
      method: "GET",
      pattern: "/v1/apps",
      auth: true,
      handler: async (ctx) => {
        const list = await apps.listApps(ctx.caller, { signal: ctx.signal });
        sendJson(ctx.res, 200, { apps: list.map(appToJson) });
      },
    },
    {
      method: "GET",
      pattern: "/v1/apps/:app",
      auth: true,
      handler: async (ctx) => {
        const app = await apps.getApp(ctx.caller, appName(ctx), { signal: ctx.signal });
        sendJson(ctx.res, 200, appToJson(app));
      },
    },
    {
      method: "PUT",
      pattern: "/v1/apps/:app",
      auth: true,
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
      handler: async (ctx) => {
        await apps.deleteApp(ctx.caller, appName(ctx));
        ctx.res.writeHead(204);
        ctx.res.end();
      },
    },
  ];
}
