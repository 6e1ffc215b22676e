import { LonghaulError, errorBody } from "@longhaul/shared";
import { startRunFeed } from "../../core/run-feed.js";
import { sendJson } from "./http-io.js";
import { runToJson } from "./json-mapping.js";
import type { RequestContext, Route } from "./router.js";
import type { RouteDeps } from "./route-deps.js";
import { openSse } from "./sse.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

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
      handler: (ctx) => streamProjectEvents(deps, ctx),
    },
  ];
}

/** The feed's filters from its query; a 400 for a bad one. */
function feedQuery(deps: RouteDeps, ctx: RequestContext) {
  const watch = ctx.query.getAll("run").flatMap((v) => v.split(",")).filter((v) => v !== "");
  for (const id of watch) {
    if (!UUID.test(id)) throw new LonghaulError("invalid_argument", `run must be a run id, got ${JSON.stringify(id)}`);
  }
  if (watch.length > deps.limits.feedMaxWatched) {
    throw new LonghaulError("invalid_argument", `at most ${deps.limits.feedMaxWatched} runs can be watched`);
  }
  const sinceRaw = ctx.query.get("since");
  const since = sinceRaw ? new Date(sinceRaw) : deps.now();
  if (Number.isNaN(since.getTime())) throw new LonghaulError("invalid_argument", "since must be an ISO 8601 date-time");
  return { app: ctx.query.get("app") ?? "", watch: watch.map((id) => id.toLowerCase()), since };
}

/**
 * `GET /v1/events?app=&run=<id>...&since=`: server-sent events of the
 * project's runs, one `event: run` frame (the run's JSON, as in `GET
 * /v1/runs`) per new run and per state change of a watched run (see
 * core/run-feed.ts for how both are found). The stream ends after
 * `INGRESS_SSE_MAX_SECONDS`; a client reconnects and reloads what it shows.
 * A key that stops working ends the stream with an `event: error` frame.
 */
async function streamProjectEvents(deps: RouteDeps, ctx: RequestContext): Promise<void> {
  const q = feedQuery(deps, ctx);
  const stop = new AbortController();
  const onGone = () => stop.abort();
  ctx.signal.addEventListener("abort", onGone, { once: true });
  const maxAge = setTimeout(() => stop.abort(), deps.limits.sseMaxSeconds * 1000);
  // Runs found by the first poll wait until the 200 is out.
  const early: unknown[] = [];
  let sse: ReturnType<typeof openSse> | undefined;
  let warned = false;
  try {
    const feed = await startRunFeed(
      {
        runs: deps.ports.runs,
        caller: ctx.caller,
        app: q.app,
        watch: q.watch,
        since: q.since,
        pollMs: deps.limits.feedPollMs,
        maxWatched: deps.limits.feedMaxWatched,
        watchSeconds: deps.limits.sseMaxSeconds,
        signal: stop.signal,
        onTransientError: (err) => {
          // Once per stream: a scheduler outage would otherwise log every poll.
          if (!warned) ctx.log.warn({ err }, "project feed: a poll or watch failed; retrying");
          warned = true;
        },
      },
      (run) => {
        const json = runToJson(run);
        if (sse) sse.send("run", json);
        else early.push(json);
      },
    );
    sse = openSse(deps, ctx);
    for (const json of early) sse.send("run", json);
    try {
      await feed.done;
    } catch (err) {
      if (!stop.signal.aborted) sse.send("error", errorBody(LonghaulError.from(err)));
    }
    sse.end();
  } finally {
    stop.abort();
    clearTimeout(maxAge);
    ctx.signal.removeEventListener("abort", onGone);
  }
}
