import { describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { HeartbeatLoop } from "./heartbeat-loop.js";
import type { Dispatch } from "./ports.js";
import { FakeClock, FakeScheduler, settle, unavailable } from "../testing/fakes.js";

const log = createLogger("invoker-test", "silent");

function setup(over: { overrideMs?: number; claimLease?: number | (() => number); batchSize?: number } = {}) {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler();
  let held: Dispatch[] = [{ runId: "r1", attempt: 1 }];
  const lost: Dispatch[][] = [];
  const loop = new HeartbeatLoop({
    invokerId: "inv-1",
    scheduler,
    clock,
    log,
    held: () => held,
    onLost: (l) => lost.push(l),
    claimLeaseSeconds: typeof over.claimLease === "function" ? over.claimLease : () => (over.claimLease as number | undefined) ?? 0,
    overrideMs: over.overrideMs,
    ...(over.batchSize ? { batchSize: over.batchSize } : {}),
  });
  return { clock, scheduler, loop, lost, setHeld: (h: Dispatch[]) => (held = h) };
}

describe("HeartbeatLoop", () => {
  it("while Handoff streams ended lately, one beat names everything owned and the streams; only what was held can be lost", async () => {
    const clock = new FakeClock();
    const scheduler = new FakeScheduler();
    const held = [{ runId: "r1", attempt: 1 }];
    const owned = [...held, { runId: "claiming", attempt: 1 }];
    let ended: string[] = ["s-1"];
    let ownedNow: Dispatch[] | undefined = owned;
    const lost: Dispatch[][] = [];
    const loop = new HeartbeatLoop({
      invokerId: "inv-1", scheduler, clock, log,
      held: () => held, owned: () => ownedNow, endedStreams: () => ended,
      onLost: (l) => lost.push(l), claimLeaseSeconds: () => 0,
    });
    // The scheduler says both are not ours: the claim in flight is not aborted.
    scheduler.heartbeatImpl = async (d) => ({ lost: d, leaseSeconds: 30 });
    await loop.beat();
    expect(scheduler.heartbeats).toEqual([owned]);
    expect(scheduler.endedNamed).toEqual([["s-1"]]);
    expect(lost).toEqual([[{ runId: "r1", attempt: 1 }]]);
    // Nothing held, nothing owned, a stream ended: still a beat (the repair).
    ownedNow = [];
    const idle = new HeartbeatLoop({ invokerId: "inv-1", scheduler, clock, log, held: () => [], owned: () => ownedNow, endedStreams: () => ended, onLost: () => undefined, claimLeaseSeconds: () => 0 });
    await idle.beat();
    expect(scheduler.endedNamed.at(-1)).toEqual(["s-1"]);
    // Cannot vouch (undefined), or no stream ended: the held list only, no streams.
    ownedNow = undefined;
    await loop.beat();
    ended = [];
    ownedNow = owned;
    await loop.beat();
    expect(scheduler.heartbeats.slice(-2)).toEqual([held, held]);
    expect(scheduler.endedNamed.slice(-2)).toEqual([[], []]);
  });

  it("a claim that teaches a short lease brings the first beat forward (the 30-s default would outlast it)", async () => {
    let lease = 0;
    const t = setup({ claimLease: () => lease });
    t.scheduler.heartbeatImpl = async () => ({ lost: [], leaseSeconds: 6 });
    t.loop.start(); // timer set for 10 s (default lease 30 s)
    await t.clock.advance(1_000);
    lease = 6;
    t.loop.nudge(); // now due 2 s from here
    await t.clock.advance(1_999);
    expect(t.scheduler.heartbeats).toHaveLength(0);
    await t.clock.advance(1);
    expect(t.scheduler.heartbeats).toHaveLength(1);
    // A nudge when the next beat is already due within a period changes nothing.
    await t.clock.advance(1_000);
    t.loop.nudge();
    await t.clock.advance(1_000);
    expect(t.scheduler.heartbeats).toHaveLength(2);
  });


  it("beats every lease/3 with the held runs, learning the lease from claims and answers", async () => {
    const t = setup({ claimLease: 60 });
    t.scheduler.heartbeatImpl = async () => ({ lost: [], leaseSeconds: 9 });
    t.loop.start();
    await t.clock.advance(19_999);
    expect(t.scheduler.heartbeats).toHaveLength(0);
    await t.clock.advance(1);
    expect(t.scheduler.heartbeats).toEqual([[{ runId: "r1", attempt: 1 }]]);
    // The answer said 9 s: the next beat comes 3 s later.
    expect(t.loop.periodMs()).toBe(3_000);
    await t.clock.advance(3_000);
    expect(t.scheduler.heartbeats).toHaveLength(2);
    await t.loop.stop();
    await t.clock.advance(60_000);
    expect(t.scheduler.heartbeats).toHaveLength(2);
  });

  it("uses INVOKER_HEARTBEAT_MS when set", async () => {
    const t = setup({ overrideMs: 500, claimLease: 60 });
    t.loop.start();
    await t.clock.advance(1_500);
    expect(t.scheduler.heartbeats).toHaveLength(3);
    await t.loop.stop();
  });

  it("passes the runs named lost on, and keeps beating after a failure", async () => {
    const t = setup({ overrideMs: 1_000 });
    let calls = 0;
    t.scheduler.heartbeatImpl = async () => {
      calls += 1;
      if (calls === 1) throw unavailable();
      return { lost: [{ runId: "r1", attempt: 1 }], leaseSeconds: 30 };
    };
    t.loop.start();
    await t.clock.advance(1_000);
    expect(t.lost).toEqual([]);
    await t.clock.advance(1_000);
    expect(t.lost).toEqual([[{ runId: "r1", attempt: 1 }]]);
    await t.loop.stop();
  });

  it("names many held runs in batches, one call after the other; a failed batch does not stop the rest", async () => {
    const t = setup({ overrideMs: 1_000, batchSize: 2 });
    t.setHeld([1, 2, 3, 4, 5].map((i) => ({ runId: `r${i}`, attempt: 1 })));
    let calls = 0;
    t.scheduler.heartbeatImpl = async (held) => {
      calls += 1;
      if (calls === 2) throw unavailable();
      return { lost: held.filter((h) => h.runId === "r5"), leaseSeconds: 30 };
    };
    t.loop.start();
    await t.clock.advance(1_000);
    await settle();
    expect(t.scheduler.heartbeats.map((b) => b.map((d) => d.runId))).toEqual([["r1", "r2"], ["r3", "r4"], ["r5"]]);
    expect(t.lost).toEqual([[{ runId: "r5", attempt: 1 }]]);
    await t.loop.stop();
  });

  it("sends nothing while nothing is held", async () => {
    const t = setup({ overrideMs: 1_000 });
    t.setHeld([]);
    t.loop.start();
    await t.clock.advance(5_000);
    await settle();
    expect(t.scheduler.heartbeats).toHaveLength(0);
    await t.loop.stop();
  });
});
