import { LonghaulError, errorBody } from "@longhaul/shared";
import { runToJson } from "./json-mapping.js";
import type { RequestContext } from "./router.js";
import type { RouteDeps } from "./route-deps.js";

/** Reconnect delay suggested to EventSource clients, in milliseconds. */
const RETRY_MS = 3000;

function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * `GET /v1/runs/{id}/events`: server-sent events from RunService/WatchRun.
 * One `event: run` frame with the run's JSON per state change; the stream
 * ends after the run finishes. A comment line every heartbeat period keeps
 * proxies from closing an idle stream. The first state is awaited before the
 * 200 is sent, so an unknown run is still an ordinary JSON 404. A stream
 * that reaches its maximum age just ends and EventSource reconnects.
 */
export async function streamRunEvents(deps: RouteDeps, ctx: RequestContext, runId: string): Promise<void> {
  const { res } = ctx;
  const watch = deps.ports.runs.watchRun(ctx.caller, runId, deps.limits.sseMaxSeconds, ctx.signal);
  const iterator = watch[Symbol.asyncIterator]();
  const first = await iterator.next();

  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-store",
    // nginx and friends would otherwise buffer the stream.
    "x-accel-buffering": "no",
  });
  deps.metrics.streamsStarted.inc({ kind: "sse" });
  res.write(`retry: ${RETRY_MS}\n\n`);
  const heartbeat = setInterval(() => res.write(": heartbeat\n\n"), deps.limits.sseHeartbeatSeconds * 1000);
  try {
    if (!first.done) res.write(frame("run", runToJson(first.value)));
    for (let next = first; !next.done; ) {
      next = await iterator.next();
      if (!next.done) res.write(frame("run", runToJson(next.value)));
    }
  } catch (err) {
    if (ctx.signal.aborted) return;
    // The 200 is out: report the failure in-band, then close.
    const e = LonghaulError.from(err);
    if (e.code === "internal") ctx.log.error({ err }, "run watch failed");
    res.write(frame("error", errorBody(e)));
  } finally {
    clearInterval(heartbeat);
    await iterator.return?.();
  }
  res.end();
}
