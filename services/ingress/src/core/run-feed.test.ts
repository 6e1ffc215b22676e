import { afterEach, describe, expect, it } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import { runsPb } from "@longhaul/shared/proto";
import type { Caller, RunsPort, RunsWatchItem } from "./ports.js";
import { openRunFeed, type RunFeedOptions } from "./run-feed.js";

const S = runsPb.RunStatus;
const caller: Caller = { project: "dev", scopes: ["read"], authorization: "Bearer k" };
const T0 = Date.parse("2026-05-01T12:00:00Z");

/**
 * A plain RunsPort whose WatchRuns stream the test drives: `push` queues an
 * item, `fail` ends the stream with an error, `end` ends it.
 */
function fakeRuns() {
  const queue: (RunsWatchItem | Error | "end")[] = [];
  let wake: (() => void) | undefined;
  const state = { requests: [] as runsPb.WatchRunsRequest[], open: 0 };
  const put = (x: RunsWatchItem | Error | "end") => {
    queue.push(x);
    wake?.();
  };
  const port = {
    async *watchRuns(_c: Caller, req: runsPb.WatchRunsRequest, _max: number, signal: AbortSignal): AsyncIterable<RunsWatchItem> {
      state.requests.push(req);
      state.open++;
      try {
        while (!signal.aborted) {
          const next = queue.shift();
          if (next === undefined) {
            await new Promise<void>((r) => {
              wake = r;
              signal.addEventListener("abort", () => r(), { once: true });
            });
            continue;
          }
          if (next === "end") return;
          if (next instanceof Error) throw next;
          yield next;
        }
      } finally {
        state.open--;
      }
    },
  } as unknown as RunsPort;
  return {
    port,
    state,
    live: () => put({ kind: "live" }),
    run: (id: string, status: runsPb.RunStatus) => put({ kind: "run", run: runsPb.Run.fromPartial({ id, status }) }),
    fail: (err: Error) => put(err),
    end: () => put("end"),
  };
}

const stops: AbortController[] = [];
afterEach(() => {
  for (const s of stops.splice(0)) s.abort();
});

function options(port: RunsPort, over: Partial<RunFeedOptions> = {}): RunFeedOptions {
  const stop = new AbortController();
  stops.push(stop);
  return { runs: port, caller, app: "", runIds: [], since: new Date(T0), maxSeconds: 60, signal: stop.signal, ...over };
}

/** Collects the feed's runs as `id:status` until it ends. */
async function collect(feed: AsyncIterable<runsPb.Run>, into: string[]): Promise<void> {
  for await (const r of feed) into.push(`${r.id}:${r.status}`);
}

describe("project run feed", () => {
  it("asks WatchRuns for the app, the named runs and the runs since (less the overlap)", async () => {
    const f = fakeRuns();
    f.live();
    await openRunFeed(options(f.port, { app: "thumbs", runIds: ["r1", "r2"], overlapMs: 5000 }));
    expect(f.state.requests).toEqual([{ app: "thumbs", runIds: ["r1", "r2"], createdAfter: new Date(T0 - 5000) }]);
  });

  it("resolves only once the scheduler listens, then yields each changed run", async () => {
    const f = fakeRuns();
    let opened = false;
    const opening = openRunFeed(options(f.port)).then((feed) => {
      opened = true;
      return feed;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(opened).toBe(false);
    f.live();
    const feed = await opening;
    const got: string[] = [];
    const reading = collect(feed, got);
    f.run("a", S.RUN_STATUS_QUEUED);
    f.run("a", S.RUN_STATUS_RUNNING);
    f.run("b", S.RUN_STATUS_SUCCEEDED);
    f.end();
    await reading;
    expect(got).toEqual([`a:${S.RUN_STATUS_QUEUED}`, `a:${S.RUN_STATUS_RUNNING}`, `b:${S.RUN_STATUS_SUCCEEDED}`]);
  });

  it("throws an error before it is live, so the HTTP answer is still an ordinary error", async () => {
    const f = fakeRuns();
    f.fail(new LonghaulError("invalid_argument", "app: bad name"));
    await expect(openRunFeed(options(f.port))).rejects.toThrow("app: bad name");
    const g = fakeRuns();
    g.end();
    await expect(openRunFeed(options(g.port))).rejects.toMatchObject({ code: "unavailable" });
  });

  it("throws a failure after it is live from the iteration (the client reconnects and reloads)", async () => {
    const f = fakeRuns();
    f.live();
    const feed = await openRunFeed(options(f.port));
    f.run("a", S.RUN_STATUS_RUNNING);
    f.fail(new LonghaulError("unavailable", "scheduler gone"));
    const got: string[] = [];
    await expect(collect(feed, got)).rejects.toThrow("scheduler gone");
    expect(got).toEqual([`a:${S.RUN_STATUS_RUNNING}`]);
  });

  it("ends, with the stream closed, when its signal aborts", async () => {
    const f = fakeRuns();
    f.live();
    const opts = options(f.port);
    const feed = await openRunFeed(opts);
    const got: string[] = [];
    const reading = collect(feed, got);
    await new Promise((r) => setTimeout(r, 10));
    expect(f.state.open).toBe(1);
    stops.at(-1)!.abort();
    await reading;
    expect(f.state.open).toBe(0);
  });
});
