import { afterEach, describe, expect, it } from "vitest";
import type { RunRecord } from "./model.js";
import type { EventBus, ListFilter, SchedulerStore } from "./ports.js";
import { createProjectWatchers, watchProjectRuns, type WatchRunsQuery } from "./runs-watch.js";

// The project watch's logic with plain fakes of its two ports: a bus whose
// notices the test sends by hand, and a store of runs in memory that counts
// its reads.

const T0 = Date.parse("2026-05-01T12:00:00Z");
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

function fakes() {
  const runs = new Map<string, RunRecord>();
  const listeners = new Map<string, Set<(runId: string) => void>>();
  const reads: string[][] = [];
  const lists: ListFilter[] = [];
  const store = {
    async findRuns(project: string, ids: readonly string[]) {
      reads.push([...ids]);
      return [...runs.values()].filter((r) => r.project_id === project && ids.includes(r.id)).sort((a, b) => a.created_at.getTime() - b.created_at.getTime());
    },
    async listRuns(f: ListFilter) {
      lists.push(f);
      return [...runs.values()]
        .filter((r) => r.project_id === f.project && (!f.app || r.app === f.app) && (!f.createdAfter || r.created_at > f.createdAfter))
        .sort((a, b) => b.created_at.getTime() - a.created_at.getTime())
        .slice(0, f.limit);
    },
  } as unknown as SchedulerStore;
  const bus = {
    watchProject(project: string, onChange: (runId: string) => void) {
      const set = listeners.get(project) ?? new Set();
      listeners.set(project, set);
      set.add(onChange);
      return () => set.delete(onChange);
    },
    watchesReady: () => Promise.resolve(),
  } as unknown as EventBus;
  return {
    store,
    bus,
    reads,
    lists,
    listening: (project: string) => listeners.get(project)?.size ?? 0,
    put(n: number, patch: Partial<RunRecord> = {}) {
      const prev = runs.get(id(n));
      const run = { id: id(n), project_id: "p1", app: "a", status: "queued", attempt: 0, webhook_state: "none", created_at: new Date(T0 + n), ...prev, ...patch } as RunRecord;
      runs.set(run.id, run);
      return run;
    },
    /** Sends a change notice, as the bus would after the scheduler's commit. */
    notify(n: number) {
      const run = runs.get(id(n))!;
      for (const l of listeners.get(run.project_id) ?? []) l(run.id);
    },
  };
}

const stops: AbortController[] = [];
afterEach(() => {
  for (const s of stops.splice(0)) s.abort();
});

/** Starts a watch; `events` gets "live" then `<n>:<status>` per run sent. */
function start(f: ReturnType<typeof fakes>, query: Partial<WatchRunsQuery> = {}, coalesceMs = 50, project = "p1") {
  const ac = new AbortController();
  stops.push(ac);
  const events: string[] = [];
  const done = watchProjectRuns({ store: f.store, bus: f.bus }, project, { app: "", runIds: [], createdAfter: undefined, ...query }, ac.signal, {
    live: () => events.push("live"),
    run: (r) => events.push(`${Number(r.id.slice(-12))}:${r.status}`),
  }, { coalesceMs });
  return { events, done, stop: () => ac.abort() };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 3000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe("project watch", () => {
  it("coalesces a burst of notices into few reads, each run sent once in its latest state", async () => {
    const f = fakes();
    const w = start(f, {}, 100);
    await until(() => w.events.length === 1, "live");
    for (let n = 1; n <= 20; n++) f.put(n);
    // 20 runs, each created, dispatched and running within the burst: 60 notices.
    for (const status of ["queued", "dispatched", "running"]) {
      for (let n = 1; n <= 20; n++) {
        f.put(n, { status });
        f.notify(n);
      }
    }
    await until(() => w.events.filter((e) => e.endsWith(":running")).length === 20, "every run running");
    await new Promise((r) => setTimeout(r, 250));
    // The first notice is read at once, the rest of the burst in the next window.
    expect(f.reads.length).toBeLessThanOrEqual(2);
    expect(f.reads.flat().length).toBeLessThanOrEqual(21);
    // Each run at most twice (the one read at once may show an earlier state), never a repeat.
    const perRun = new Map<string, string[]>();
    for (const e of w.events.slice(1)) perRun.set(e.split(":")[0]!, [...(perRun.get(e.split(":")[0]!) ?? []), e]);
    expect(perRun.size).toBe(20);
    for (const sent of perRun.values()) {
      expect(new Set(sent).size).toBe(sent.length);
      expect(sent.at(-1)).toMatch(/:running$/);
    }
  });

  it("reads at most once per window under a steady stream of notices", async () => {
    const f = fakes();
    const w = start(f, {}, 100);
    await until(() => w.events.length === 1, "live");
    const started = Date.now();
    let n = 0;
    while (Date.now() - started < 550) {
      f.put(++n);
      f.notify(n);
      await new Promise((r) => setTimeout(r, 5));
    }
    await until(() => w.events.length === n + 1, "every run");
    // ~100 notices over 550 ms with a 100 ms window: about 6 reads, not 100.
    expect(n).toBeGreaterThan(40);
    expect(f.reads.length).toBeLessThanOrEqual(8);
  });

  it("sends a change after a quiet spell at once, and drops a notice that changed nothing", async () => {
    const f = fakes();
    f.put(1, { status: "running" });
    const w = start(f, {}, 10_000);
    await until(() => w.events.length === 1, "live");
    const at = Date.now();
    f.put(1, { status: "succeeded" });
    f.notify(1);
    await until(() => w.events.length === 2, "the change");
    expect(Date.now() - at).toBeLessThan(1000);
    // The same state again (a republished notice): not sent twice.
    f.notify(1);
    await new Promise((r) => setTimeout(r, 30));
    expect(w.events).toEqual(["live", "1:succeeded"]);
  });

  it("keeps to its project and app, and catches up on named and recent runs once live", async () => {
    const f = fakes();
    f.put(1, { status: "running" });
    f.put(2, { status: "queued", app: "b" });
    f.put(3, { status: "succeeded", created_at: new Date(T0 + 60_000) });
    f.put(4, { project_id: "p2", created_at: new Date(T0 + 60_000) });
    const w = start(f, { app: "a", runIds: [id(1).toUpperCase(), id(2), id(4)], createdAfter: new Date(T0 + 30_000) });
    // Named runs: 1 (its app), not 2 (another app) nor 4 (another project). Recent: 3.
    await until(() => w.events.length === 3, "the catch-up");
    expect(w.events).toEqual(["live", "3:succeeded", "1:running"]);
    expect(f.lists[0]).toMatchObject({ project: "p1", app: "a", limit: 100 });
    f.put(2, { status: "running" });
    f.notify(2);
    f.put(4, { status: "running" });
    f.notify(4);
    f.put(1, { status: "succeeded" });
    f.notify(1);
    await until(() => w.events.length === 4, "the change of run 1");
    await new Promise((r) => setTimeout(r, 120));
    expect(w.events).toEqual(["live", "3:succeeded", "1:running", "1:succeeded"]);
  });

  it("rejects a bad query before it listens, and stops listening when aborted", async () => {
    const f = fakes();
    await expect(start(f, { runIds: ["nope"] }).done).rejects.toThrow(/run_ids/);
    await expect(start(f, { app: "Bad App" }).done).rejects.toThrow(/app/);
    expect(f.listening("p1")).toBe(0);
    const w = start(f);
    await until(() => f.listening("p1") === 1, "listening");
    w.stop();
    await w.done;
    expect(f.listening("p1")).toBe(0);
  });

  it("ends with the error when a read fails, so the client lists again", async () => {
    const f = fakes();
    (f.store as { findRuns: unknown }).findRuns = async () => {
      throw new Error("connection terminated");
    };
    const w = start(f);
    await until(() => w.events.length === 1, "live");
    f.put(1);
    f.notify(1);
    await expect(w.done).rejects.toThrow("connection terminated");
    expect(f.listening("p1")).toBe(0);
  });

  it("shares one subscription and one read per window among every watch of a project, catch-ups for each alone", async () => {
    const f = fakes();
    f.put(1, { status: "running" });
    f.put(2, { status: "queued", app: "b" });
    const hub = createProjectWatchers({ store: f.store, bus: f.bus }, { coalesceMs: 50 });
    const watches = Array.from({ length: 20 }, (_, i) => {
      const ac = new AbortController();
      stops.push(ac);
      const events: string[] = [];
      // Every fifth names run 1 to catch up on; every other keeps to app a.
      const done = hub.watch("p1", { app: i % 2 ? "a" : "", runIds: i % 5 === 0 ? [id(1)] : [], createdAfter: undefined }, ac.signal, {
        live: () => events.push("live"),
        run: (r) => events.push(`${Number(r.id.slice(-12))}:${r.status}`),
      });
      return { events, done, stop: () => ac.abort() };
    });
    await until(() => watches.every((w) => w.events[0] === "live"), "every watch live");
    expect(f.listening("p1")).toBe(1);
    await until(() => watches.filter((w) => w.events.includes("1:running")).length === 4, "the catch-ups");
    await new Promise((r) => setTimeout(r, 80));
    const catchUpReads = f.reads.length;
    expect(catchUpReads).toBeLessThanOrEqual(2);
    // Only the watches that named run 1 got it.
    watches.forEach((w, i) => expect(w.events.includes("1:running")).toBe(i % 5 === 0));

    f.put(1, { status: "succeeded" });
    f.notify(1);
    f.put(2, { status: "running" });
    f.notify(2);
    await until(() => watches.every((w) => w.events.includes("1:succeeded")), "every watch told");
    await new Promise((r) => setTimeout(r, 120));
    // Two notices, twenty watches: at most two reads (one at once, one after the window).
    expect(f.reads.length - catchUpReads).toBeLessThanOrEqual(2);
    watches.forEach((w, i) => expect(w.events.includes("2:running")).toBe(i % 2 === 0));
    expect(hub.stats()).toEqual({ projects: 1, watchers: 20 });
    for (const w of watches) w.stop();
    await Promise.all(watches.map((w) => w.done));
    expect(f.listening("p1")).toBe(0);
    expect(hub.stats()).toEqual({ projects: 0, watchers: 0 });
  });
});
