import { LonghaulError } from "@longhaul/shared/errors";
import type { runsPb } from "@longhaul/shared/proto";
import { sendJson } from "./http-io.js";
import { checkQueryParams } from "./query-params.js";
import type { Route } from "./router.js";
import type { RouteDeps } from "./route-deps.js";

/** The windows of `GET /v1/stats`; the scheduler cuts each into buckets (60 s, 15 min, 2 h). */
const WINDOWS = ["1h", "24h", "7d"];

/** The request of `GET /v1/stats` from its query; a 400 naming a bad or unknown parameter. */
export function statsRequestFromQuery(params: URLSearchParams): runsPb.GetRunStatsRequest {
  checkQueryParams(params, "GET /v1/stats", ["window", "app", "mode"]);
  const window = params.get("window") ?? "1h";
  if (!WINDOWS.includes(window)) throw new LonghaulError("invalid_argument", `window must be one of ${WINDOWS.join(", ")}`);
  const mode = params.get("mode") ?? "";
  if (mode !== "" && mode !== "async" && mode !== "sync") throw new LonghaulError("invalid_argument", "mode must be async or sync");
  const app = params.get("app") ?? "";
  if (params.has("app") && app === "") throw new LonghaulError("invalid_argument", "app must name an app");
  return { window, app, mode };
}

const ms = (v: number | undefined): number | null => (v === undefined ? null : v);

/** The figures as the API shows them (docs/HTTP-API.md, `GET /v1/stats`). */
export function statsToJson(res: runsPb.GetRunStatsResponse) {
  return {
    window: res.window,
    bucket_seconds: res.bucketSeconds,
    buckets: res.buckets.map((b) => ({
      start: b.start?.toISOString() ?? null,
      succeeded: b.succeeded,
      failed: b.failed,
      timed_out: b.timedOut,
      cancelled: b.cancelled,
      expired: b.expired,
      queue_wait_p50_ms: ms(b.queueWaitP50Ms),
      queue_wait_p95_ms: ms(b.queueWaitP95Ms),
      run_p50_ms: ms(b.runP50Ms),
      run_p95_ms: ms(b.runP95Ms),
      webhook_delivered: b.webhookDelivered,
      webhook_failed: b.webhookFailed,
    })),
    in_flight: res.inFlight,
    queued: res.queued,
  };
}

/**
 * `GET /v1/stats?window=1h|24h|7d[&app=][&mode=async|sync]`: the figures
 * of the dashboard's overview, computed by the scheduler in one query.
 */
export function statsRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: "GET",
      pattern: "/v1/stats",
      auth: true,
      scope: "read",
      handler: async (ctx) => {
        const res = await deps.ports.runs.getRunStats(ctx.caller, statsRequestFromQuery(ctx.query), { signal: ctx.signal });
        sendJson(ctx.res, 200, statsToJson(res));
      },
    },
  ];
}
