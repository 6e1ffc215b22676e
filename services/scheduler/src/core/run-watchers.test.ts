import { afterEach, describe, expect, it } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import type { EventBus } from "./ports.js";
import { createRunWatchers, type RunFollower, type Snapshot } from "./run-watchers.js";

// The shared watch of single runs with plain fakes: a bus whose notices the
// test sends by hand (and whose round trip it may hold back), and a run
// store in memory that counts its reads and can be made slow or failing.

const RUN = "00000000-0000-4000-8000-000000000001";

interface View {
  status: string;
}

function fakes() {
  const state = new Map<string, View>([[`p1/${RUN}`, { status: "queued" }]]);
  const listeners = new Map<string, Set<() => void>>();
  let subscriptions = 0;
  let release: (() => void) | undefined;
  let readyHeld = false;
  let gate: Promise<void> | undefined;
  let failNext: Error | undefined;
  const reads: string[] = [];
  const bus: Pick<EventBus, "watchChanges" | "watchesReady"> = {
    watchChanges(runId, onChange) {
      subscriptions += 1;
      const set = listeners.get(runId) ?? new Set();
      listeners.set(runId, set);
      set.add(onChange);
      return () => set.delete(onChange);
    },
    watchesReady: () => (readyHeld ? new Promise<void>((r) => (release = r)) : Promise.resolve()),
  };
  return {
    bus,
    reads,
    subscriptions: () => subscriptions,
    listening: (runId = RUN) => listeners.get(runId)?.size ?? 0,
    async read(project: string, runId: string): Promise<View> {
      reads.push(`${project}/${runId}`);
      if (gate) await gate;
      if (failNext) {
        const err = failNext;
        failNext = undefined;
        throw err;
      }
      const v = state.get(`${project}/${runId}`);
      if (!v) throw new LonghaulError("not_found", `run ${runId} not found`);
      return { ...v };
    },
    set(status: string) {
      state.set(`p1/${RUN}`, { status });
    },
    notify(runId = RUN) {
      for (const l of listeners.get(runId) ?? []) l();
    },
    holdReady() {
      readyHeld = true;
    },
    releaseReady() {
      release?.();
    },
    /** Reads wait until the returned function is called. */
    holdReads(): () => void {
      let open!: () => void;
      gate = new Promise<void>((r) => (open = r));
      return () => {
        gate = undefined;
        open();
      };
    },
    failNextRead(err: Error) {
      failNext = err;
    },
  };
}

const stops: AbortController[] = [];
afterEach(() => {
  for (const s of stops.splice(0)) s.abort();
});
function signal(): AbortSignal {
  const ac = new AbortController();
  stops.push(ac);
  return ac.signal;
}
const tick = () => new Promise((r) => setTimeout(r, 5));

function setup(safetyReadMs = 60_000) {
  const f = fakes();
  const watchers = createRunWatchers<View>({ bus: f.bus, read: (p, id) => f.read(p, id), isFinal: (v) => v.status === "succeeded" }, { safetyReadMs });
  return { f, watchers };
}

describe("createRunWatchers", () => {
  it("gives fifty watchers of one run one subscription, one first read and one read per change", async () => {
    const { f, watchers } = setup();
    const followers = Array.from({ length: 50 }, () => watchers.follow("p1", RUN));
    const firsts = await Promise.all(followers.map((w) => w.first()));
    expect(firsts.every((s) => s.view.status === "queued")).toBe(true);
    expect(f.subscriptions()).toBe(1);
    expect(f.reads).toHaveLength(1);

    for (const status of ["dispatched", "running", "succeeded"]) {
      const nexts = followers.map((w, i) => w.next(firsts[i]!, Number.POSITIVE_INFINITY, signal()));
      f.set(status);
      f.notify();
      const got = await Promise.all(nexts);
      expect(got.every((s) => s.view.status === status)).toBe(true);
      firsts.splice(0, firsts.length, ...got);
    }
    // The first read, then one per change: independent of the fifty.
    expect(f.reads).toHaveLength(4);
    expect(watchers.stats()).toEqual({ runs: 1, watchers: 50 });
    for (const w of followers) w.close();
    expect(f.listening()).toBe(0);
    expect(watchers.stats()).toEqual({ runs: 0, watchers: 0 });
  });

  it("reads once more after a read in flight, however many notices came during it", async () => {
    const { f, watchers } = setup();
    const w = watchers.follow("p1", RUN);
    const first = await w.first();
    const open = f.holdReads();
    f.notify();
    await tick();
    expect(f.reads).toHaveLength(2);
    // The read in flight may predate these commits: one more read covers all of them.
    f.set("running");
    for (let i = 0; i < 10; i++) f.notify();
    const next = w.next(first, Number.POSITIVE_INFINITY, signal());
    open();
    let s = await next;
    while (s.view.status !== "running") s = await w.next(s, Number.POSITIVE_INFINITY, signal());
    await tick();
    expect(f.reads).toHaveLength(3);
    w.close();
  });

  it("reads a run only after its subscription is confirmed, and a late joiner starts from the shared read", async () => {
    const { f, watchers } = setup();
    f.holdReady();
    const a = watchers.follow("p1", RUN);
    const first = a.first();
    f.notify();
    await tick();
    expect(f.reads).toHaveLength(0);
    f.releaseReady();
    expect((await first).view.status).toBe("queued");
    await tick();
    const b = watchers.follow("p1", RUN);
    expect((await b.first()).view.status).toBe("queued");
    expect(f.reads).toHaveLength(1);
    a.close();
    b.close();
  });

  it("reads a quiet run once per safety period, not once per watcher", async () => {
    const { f, watchers } = setup(40);
    const followers = Array.from({ length: 20 }, () => watchers.follow("p1", RUN));
    await Promise.all(followers.map((w) => w.first()));
    await new Promise((r) => setTimeout(r, 230));
    // One first read and about five safety reads; twenty watchers polling would be a hundred.
    expect(f.reads.length).toBeGreaterThanOrEqual(3);
    expect(f.reads.length).toBeLessThanOrEqual(8);
    for (const w of followers) w.close();
    const after = f.reads.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(f.reads).toHaveLength(after);
  });

  it("catches a lost notice by its safety read, and stops reading a finished run", async () => {
    const { f, watchers } = setup(30);
    const w = watchers.follow("p1", RUN);
    let s: Snapshot<View> = await w.first();
    f.set("succeeded");
    // No notice: the safety read finds the change.
    while (s.view.status !== "succeeded") s = await w.next(s, 1_000, signal());
    const reads = f.reads.length;
    await new Promise((r) => setTimeout(r, 120));
    expect(f.reads).toHaveLength(reads);
    w.close();
  });

  it("keeps projects apart: the same run id read for each project, not found for the other", async () => {
    const { f, watchers } = setup();
    const mine = watchers.follow("p1", RUN);
    const theirs = watchers.follow("p2", RUN);
    await expect(theirs.first()).rejects.toMatchObject({ code: "not_found" });
    expect((await mine.first()).view.status).toBe("queued");
    expect(f.reads.sort()).toEqual([`p1/${RUN}`, `p2/${RUN}`]);
    theirs.close();
    mine.close();
  });

  it("fails every waiting watcher with a failed read, and the next joiner reads anew", async () => {
    const { f, watchers } = setup();
    const followers: RunFollower<View>[] = [watchers.follow("p1", RUN), watchers.follow("p1", RUN)];
    const firsts = await Promise.all(followers.map((w) => w.first()));
    const nexts = followers.map((w, i) => w.next(firsts[i]!, Number.POSITIVE_INFINITY, signal()));
    f.failNextRead(new LonghaulError("unavailable", "the database is unavailable"));
    f.notify();
    for (const n of nexts) await expect(n).rejects.toMatchObject({ code: "unavailable" });
    const late = watchers.follow("p1", RUN);
    await late.first();
    expect(f.reads).toHaveLength(3);
    for (const w of [...followers, late]) w.close();
  });

  it("answers a wait with the newest read when its time is up or it is aborted", async () => {
    const { f, watchers } = setup();
    const w = watchers.follow("p1", RUN);
    const first = await w.first();
    const timedOut = await w.next(first, 20, signal());
    expect(timedOut).toBe(first);
    const ac = new AbortController();
    const pending = w.next(first, Number.POSITIVE_INFINITY, ac.signal);
    ac.abort();
    expect(await pending).toBe(first);
    expect(f.reads).toHaveLength(1);
    w.close();
  });
});
