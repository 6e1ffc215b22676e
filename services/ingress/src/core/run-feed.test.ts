import { afterEach, describe, expect, it } from "vitest";
import { LonghaulError, runsPb } from "@longhaul/shared";
import type { Caller, RunsPort } from "./ports.js";
import { startRunFeed, type RunFeedOptions } from "./run-feed.js";

const S = runsPb.RunStatus;
const caller: Caller = { project: "dev", authorization: "Bearer k" };
const T0 = Date.parse("2026-05-01T12:00:00Z");

/**
 * A plain in-memory RunsPort: ListRuns filters and orders like the
 * scheduler; WatchRun yields the run now, then each `change`, and ends once
 * the run is finished (or its signal aborts).
 */
function fakeRuns() {
  const runs = new Map<string, runsPb.Run>();
  const watchers = new Map<string, Set<() => void>>();
  const state = { listError: undefined as Error | undefined, watching: new Set<string>(), lists: 0 };
  const finished = (s: runsPb.RunStatus) => s >= S.RUN_STATUS_SUCCEEDED;
  const port = {
    async listRuns(_c: Caller, req: runsPb.ListRunsRequest) {
      state.lists++;
      if (state.listError) throw state.listError;
      const list = [...runs.values()]
        .filter((r) => (!req.app || r.app === req.app) && (!req.createdAfter || r.createdAt!.getTime() > req.createdAfter.getTime()))
        .sort((a, b) => b.createdAt!.getTime() - a.createdAt!.getTime());
      return { runs: list.slice(0, req.limit), nextCursor: "" };
    },
    async *watchRun(_c: Caller, runId: string, _max: number, signal: AbortSignal) {
      if (!runs.has(runId)) throw new LonghaulError("not_found", "no run");
      state.watching.add(runId);
      try {
        let seen = -1;
        let version = 0;
        const bump = () => version++;
        const set = watchers.get(runId) ?? new Set();
        watchers.set(runId, set);
        set.add(bump);
        try {
          while (!signal.aborted) {
            if (seen !== version) {
              seen = version;
              const run = runs.get(runId)!;
              yield run;
              if (finished(run.status)) return;
            }
            await new Promise((r) => setTimeout(r, 5));
          }
        } finally {
          set.delete(bump);
        }
      } finally {
        state.watching.delete(runId);
      }
    },
  } as unknown as RunsPort;
  return {
    port,
    state,
    add(id: string, status: runsPb.RunStatus, createdMs: number, app = "a") {
      runs.set(id, runsPb.Run.fromPartial({ id, app, status, createdAt: new Date(createdMs) }));
    },
    change(id: string, patch: Partial<runsPb.Run>) {
      runs.set(id, { ...runs.get(id)!, ...patch });
      for (const w of watchers.get(id) ?? []) w();
    },
  };
}

const stops: AbortController[] = [];
afterEach(() => {
  for (const s of stops.splice(0)) s.abort();
});

function options(port: RunsPort, over: Partial<RunFeedOptions> = {}): RunFeedOptions {
  const stop = new AbortController();
  stops.push(stop);
  return { runs: port, caller, app: "", watch: [], since: new Date(T0), pollMs: 20, maxWatched: 10, watchSeconds: 60, signal: stop.signal, overlapMs: 5000, ...over };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 3000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const summary = (r: runsPb.Run) => `${r.id}:${r.status}`;

describe("project run feed", () => {
  it("sends new runs oldest first, each once, across overlapping polls", async () => {
    const f = fakeRuns();
    f.add("old", S.RUN_STATUS_SUCCEEDED, T0 - 10_000);
    f.add("r1", S.RUN_STATUS_SUCCEEDED, T0 + 1);
    f.add("r2", S.RUN_STATUS_FAILED, T0 + 2);
    const got: string[] = [];
    const opts = options(f.port);
    await startRunFeed(opts, (r) => got.push(summary(r)));
    // `old` is before the overlap window; r1 and r2 are sent by the first poll, before start resolves.
    expect(got).toEqual([`r1:${S.RUN_STATUS_SUCCEEDED}`, `r2:${S.RUN_STATUS_FAILED}`]);
    // Committed late with an earlier created_at, but inside the overlap: still sent, once.
    f.add("late", S.RUN_STATUS_SUCCEEDED, T0 - 1000);
    f.add("r3", S.RUN_STATUS_SUCCEEDED, T0 + 3);
    await until(() => got.length === 4, "two more runs");
    const polls = f.state.lists;
    await until(() => f.state.lists >= polls + 3, "three more polls");
    expect(got.slice(2).sort()).toEqual([`late:${S.RUN_STATUS_SUCCEEDED}`, `r3:${S.RUN_STATUS_SUCCEEDED}`]);
  });

  it("watches unfinished runs, new and named, and sends their changes until they finish", async () => {
    const f = fakeRuns();
    f.add("named", S.RUN_STATUS_RUNNING, T0 - 60_000);
    f.add("fresh", S.RUN_STATUS_QUEUED, T0 + 1);
    const got: string[] = [];
    const feed = await startRunFeed(options(f.port, { watch: ["named"] }), (r) => got.push(summary(r)));
    await until(() => f.state.watching.size === 2, "both watched");
    f.change("fresh", { status: S.RUN_STATUS_RUNNING });
    f.change("named", { status: S.RUN_STATUS_SUCCEEDED, statusCode: 200 });
    await until(() => got.includes(`fresh:${S.RUN_STATUS_RUNNING}`) && got.includes(`named:${S.RUN_STATUS_SUCCEEDED}`), "changes");
    await until(() => f.state.watching.size === 1, "the finished run let go");
    // Each state once: the watch's first frame repeats what the poll sent and is dropped.
    expect(got.filter((g) => g === `fresh:${S.RUN_STATUS_QUEUED}`)).toHaveLength(1);
    expect(got.filter((g) => g === `named:${S.RUN_STATUS_RUNNING}`)).toHaveLength(1);
    expect(feed.done).toBeInstanceOf(Promise);
  });

  it("lets go of the oldest watch past maxWatched", async () => {
    const f = fakeRuns();
    for (let i = 0; i < 4; i++) f.add(`q${i}`, S.RUN_STATUS_QUEUED, T0 + 1 + i);
    await startRunFeed(options(f.port, { maxWatched: 2 }), () => undefined);
    await until(() => f.state.watching.size === 2, "two watches");
    expect([...f.state.watching].sort()).toEqual(["q2", "q3"]);
  });

  it("filters by app", async () => {
    const f = fakeRuns();
    f.add("mine", S.RUN_STATUS_SUCCEEDED, T0 + 1, "a");
    f.add("theirs", S.RUN_STATUS_SUCCEEDED, T0 + 2, "b");
    const got: string[] = [];
    await startRunFeed(options(f.port, { app: "a" }), (r) => got.push(r.id));
    expect(got).toEqual(["mine"]);
  });

  it("throws a failing first poll, rides out transient errors, and ends on a fatal one", async () => {
    const f = fakeRuns();
    f.state.listError = new LonghaulError("invalid_argument", "bad app");
    await expect(startRunFeed(options(f.port), () => undefined)).rejects.toThrow("bad app");

    f.state.listError = undefined;
    const transient: string[] = [];
    const feed = await startRunFeed(options(f.port, { onTransientError: (e) => transient.push(e.code) }), () => undefined);
    f.state.listError = new LonghaulError("unavailable", "scheduler down");
    await until(() => transient.length >= 2, "transient errors reported");
    f.state.listError = new LonghaulError("unauthenticated", "key revoked");
    await expect(feed.done).rejects.toThrow("key revoked");
  });

  it("ends, with every watch stopped, when its signal aborts", async () => {
    const f = fakeRuns();
    f.add("w", S.RUN_STATUS_RUNNING, T0 + 1);
    const opts = options(f.port);
    const feed = await startRunFeed(opts, () => undefined);
    await until(() => f.state.watching.size === 1, "watching");
    stops.at(-1)!.abort();
    await feed.done;
    expect(f.state.watching.size).toBe(0);
  });
});
