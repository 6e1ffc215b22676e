import { LonghaulError, errorBody } from "@longhaul/shared/errors";
import { runToJson } from "./json-mapping.js";
import type { RequestContext } from "./router.js";
import type { RouteDeps } from "./route-deps.js";
import { openSse } from "./sse.js";

/**
 * `GET /v1/runs/{id}/events`: server-sent events from RunService/WatchRun.
 * One `event: run` frame with the run's JSON per state change; the stream
 * ends after the run finishes. The first state is awaited before the 200 is
 * sent, so an unknown run is still an ordinary JSON 404. A stream that
 * reaches its maximum age just ends and EventSource reconnects.
 */
export async function streamRunEvents(deps: RouteDeps, ctx: RequestContext, runId: string): Promise<void> {
  const watch = deps.ports.runs.watchRun(ctx.caller, runId, deps.limits.sseMaxSeconds, ctx.signal);
  const iterator = watch[Symbol.asyncIterator]();
  const first = await iterator.next();

  const sse = openSse(deps, ctx);
  try {
    if (!first.done) sse.send("run", runToJson(first.value));
    for (let next = first; !next.done; ) {
      next = await iterator.next();
      if (!next.done) sse.send("run", runToJson(next.value));
    }
  } catch (err) {
    if (ctx.signal.aborted) return;
    // The 200 is out: report the failure in-band, then close.
    const e = LonghaulError.from(err);
    if (e.code === "internal") ctx.log.error({ err }, "run watch failed");
    sse.send("error", errorBody(e));
  } finally {
    await iterator.return?.();
    sse.end();
  }
}
