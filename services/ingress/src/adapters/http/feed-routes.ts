import { UUID } from "@longhaul/shared/domain";
import { LonghaulError, errorBody } from "@longhaul/shared/errors";
import { openRunFeed } from "../../core/run-feed.js";
import { sendJson } from "./http-io.js";
import { checkQueryParams } from "./query-params.js";
import { runToJson } from "./json-mapping.js";
import type { RequestContext, Route } from "./router.js";
import type { RouteDeps } from "./route-deps.js";
import { openSse } from "./sse.js";


/**
 * The caller's own project (`GET /v1/project`), which the dashboard shows
 * after sign-in, and the project's live feed of runs (`GET /v1/events`).
 */
export function feedRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: "GET",
      pattern: "/v1/project",
      auth: true,
      handler: async (ctx) => {
        sendJson(ctx.res, 200, { project: ctx.caller.project });
      },
    },
    {
      method: "GET",
      pattern: "/v1/events",
      auth: true,
      scope: "read",
      handler: (ctx) => streamProjectEvents(deps, ctx),
    },
  ];
}

/** The feed's filters from its query; a 400 for a bad one. */
function feedQuery(deps: RouteDeps, ctx: RequestContext) {
  checkQueryParams(ctx.query, "GET /v1/events", ["app", "run", "since"], ["run"]);
  const runIds = ctx.query.getAll("run").flatMap((v) => v.split(",")).filter((v) => v !== "");
  for (const id of runIds) {
    if (!UUID.test(id)) throw new LonghaulError("invalid_argument", `run must be a run id, got ${JSON.stringify(id)}`);
  }
  if (runIds.length > deps.limits.feedMaxWatched) {
    throw new LonghaulError("invalid_argument", `at most ${deps.limits.feedMaxWatched} runs can be named`);
  }
  const sinceRaw = ctx.query.get("since");
  const since = sinceRaw ? new Date(sinceRaw) : deps.now();
  if (Number.isNaN(since.getTime())) throw new LonghaulError("invalid_argument", "since must be an ISO 8601 date-time");
  return { app: ctx.query.get("app") ?? "", runIds: runIds.map((id) => id.toLowerCase()), since };
}

/**
 * `GET /v1/events?app=&run=<id>...&since=`: server-sent events of the
 * project's runs, one `event: run` frame (the run's JSON, as in `GET
 * /v1/runs`) per new run and per change of any run, from one
 * RunService/WatchRuns stream (core/run-feed.ts). The 200 is sent once the
 * scheduler listens; the stream ends after `INGRESS_SSE_MAX_SECONDS` (a
 * client reconnects and reloads what it shows). A scheduler copy that stops
 * is replaced by another without a frame (the port's watchRuns); any other
 * failure after the 200 (a key that stopped working, no scheduler left) ends
 * the stream with an `event: error` frame.
 */
async function streamProjectEvents(deps: RouteDeps, ctx: RequestContext): Promise<void> {
  const q = feedQuery(deps, ctx);
  const stop = new AbortController();
  const onGone = () => stop.abort();
  ctx.signal.addEventListener("abort", onGone, { once: true });
  try {
    const feed = await openRunFeed({
      runs: deps.ports.runs,
      caller: ctx.caller,
      app: q.app,
      runIds: q.runIds,
      since: q.since,
      maxSeconds: deps.limits.sseMaxSeconds,
      signal: stop.signal,
    });
    const sse = openSse(deps, ctx);
    try {
      for await (const run of feed) {
        // False once the client is gone (or dropped for not reading).
        if (!sse.send("run", runToJson(run))) break;
      }
    } catch (err) {
      if (!stop.signal.aborted) {
        const e = LonghaulError.from(err);
        ctx.log.warn({ err }, "project feed ended by a failure");
        sse.send("error", errorBody(e));
      }
    }
    sse.end();
  } finally {
    stop.abort();
    ctx.signal.removeEventListener("abort", onGone);
  }
}
