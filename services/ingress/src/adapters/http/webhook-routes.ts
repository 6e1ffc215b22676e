import { LonghaulError } from "@longhaul/shared/errors";
import { sendJson } from "./http-io.js";
import { deliveryToJson, secretToJson } from "./json-mapping.js";
import type { RequestContext } from "./router.js";
import type { Route } from "./router.js";
import type { RouteDeps } from "./route-deps.js";
import { runIdParam } from "./run-routes.js";

/**
 * The webhook parts of the control API, served by the notifier's internal
 * service. The notifier trusts the project it is told, so a run is first
 * looked up through the public RunService with the caller's key: another
 * project's run is a 404 there, before the notifier is asked anything.
 */
export function webhookRoutes(deps: RouteDeps): Route[] {
  const { runs, webhooks } = deps.ports;

  const ownRun = async (ctx: RequestContext): Promise<string> => {
    const run = await runs.getRun(ctx.caller, runIdParam(ctx), 0, { signal: ctx.signal });
    return run.id;
  };
  const deliveryOrNotFound = (runId: string, d: Parameters<typeof deliveryToJson>[0] | undefined) => {
    if (!d) throw new LonghaulError("not_found", `run ${runId} has no webhook delivery`);
    return deliveryToJson(d);
  };

  return [
    {
      method: "GET",
      pattern: "/v1/runs/:id/deliveries",
      auth: true,
      scope: "read",
      handler: async (ctx) => {
        const runId = await ownRun(ctx);
        const d = await webhooks.listDeliveries(ctx.caller.project, runId, { signal: ctx.signal });
        sendJson(ctx.res, 200, deliveryOrNotFound(runId, d));
      },
    },
    {
      method: "POST",
      pattern: "/v1/runs/:id/webhook/redeliver",
      auth: true,
      scope: "invoke",
      handler: async (ctx) => {
        const runId = await ownRun(ctx);
        const d = await webhooks.redeliver(ctx.caller.project, runId);
        sendJson(ctx.res, 202, deliveryOrNotFound(runId, d));
      },
    },
    {
      method: "GET",
      pattern: "/v1/webhooks/secret",
      auth: true,
      scope: "admin",
      handler: async (ctx) => {
        sendJson(ctx.res, 200, secretToJson(await webhooks.getSecret(ctx.caller.project, { signal: ctx.signal })));
      },
    },
    {
      method: "POST",
      pattern: "/v1/webhooks/secret/rotate",
      auth: true,
      scope: "admin",
      handler: async (ctx) => {
        sendJson(ctx.res, 200, secretToJson(await webhooks.rotateSecret(ctx.caller.project)));
      },
    },
  ];
}
