import { describe, expect, it } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import { createLogger } from "@longhaul/shared/logger";
import { createCapacity } from "./capacity.js";
import { RunInvoker } from "./run-invoker.js";
import {
  FakeClock,
  FakeMetrics,
  FakeScheduler,
  FakeUpstream,
  claimedRun,
  settle,
  unavailable,
} from "../testing/fakes.js";

const log = createLogger("invoker-test", "silent");

function setup(limit = 10, maxConcurrentReports?: number) {
  const clock = new FakeClock();
  const scheduler = new FakeScheduler();
  const upstream = new FakeUpstream();
  const metrics = new FakeMetrics();
  const capacity = createCapacity(limit);
  const invoker = new RunInvoker({
    invokerId: "inv-1",
    scheduler,
    upstream,
    capacity,
    clock,
    metrics,
    log,
    completeBackoff: { initialMs: 100, maxMs: 1000 },
    ...(maxConcurrentReports ? { maxConcurrentReports } : {}),
  });
  return { clock, scheduler, upstream, metrics, capacity, invoker };
}

const ok = (status = 200, headers: Array<{ name: string; value: string }> = []) => ({
  kind: "response" as const,
  statusCode: status,
  headers,
  body: Buffer.from("done"),
  bodyTruncated: false,
});

async function claimAndStart(invoker: RunInvoker, runId: string, attempt = 1) {
  const decision = await invoker.claim({ runId, attempt });
  if (decision.kind !== "claimed") throw new Error(`expected a claim, got ${decision.kind}`);
  decision.start();
  await settle();
  return decision;
}

describe("RunInvoker", () => {
  it("sends at most maxConcurrentReports CompleteRun calls at once; the others wait their turn", async () => {
    const t = setup(10, 2);
    const answers: Array<() => void> = [];
    t.scheduler.completeImpl = () => new Promise((resolve) => answers.push(() => resolve({ accepted: true })));
    for (const id of ["r1", "r2", "r3", "r4"]) await claimAndStart(t.invoker, id);
    for (const id of ["r1", "r2", "r3", "r4"]) t.upstream.answer(id, ok());
    await settle();
    expect(t.scheduler.completions.map((c) => c.dispatch.runId)).toEqual(["r1", "r2"]);
    answers.shift()!();
    await settle();
    expect(t.scheduler.completions.map((c) => c.dispatch.runId)).toEqual(["r1", "r2", "r3"]);
    for (;;) {
      const next = answers.shift();
      if (!next) break;
      next();
      await settle();
    }
    expect(t.scheduler.completions).toHaveLength(4);
    expect(t.capacity.inUse()).toBe(0);
  });

  it("holds a claimed call and reports the app's answer", async () => {
    const t = setup();
    await claimAndStart(t.invoker, "r1", 2);
    expect(t.scheduler.claims).toEqual([{ runId: "r1", attempt: 2 }]);
    expect(t.capacity.inUse()).toBe(1);
    const req = t.upstream.requests[0]!;
    expect(req.url).toBe("http://app.invalid/work?x=1");
    expect(req.method).toBe("POST");
    expect(Buffer.from(req.body).toString()).toBe('{"n":1}');
    expect(req.headers).toEqual(
      expect.arrayContaining([
        { name: "content-type", value: "application/json" },
        { name: "Idempotency-Key", value: "r1" },
        { name: "X-Longhaul-Run-Id", value: "r1" },
        { name: "X-Longhaul-Attempt", value: "2" },
      ]),
    );
    expect(t.invoker.heldRuns()).toEqual([{ runId: "r1", attempt: 2 }]);

    t.upstream.answer("r1", ok(503, [{ name: "retry-after", value: "120" }]));
    await settle();
    expect(t.scheduler.completions).toHaveLength(1);
    const { dispatch, outcome } = t.scheduler.completions[0]!;
    expect(dispatch).toEqual({ runId: "r1", attempt: 2 });
    expect(outcome).toMatchObject({ statusCode: 503, errorCode: "", retryAfterSeconds: 120, bodyTruncated: false });
    expect(Buffer.from(outcome.body).toString()).toBe("done");
    expect(t.invoker.heldRuns()).toEqual([]);
    expect(t.capacity.inUse()).toBe(0);
    expect(t.metrics.ended).toEqual([{ mode: "async", outcome: "app_error" }]);
  });

  it("reads a Retry-After date relative to the clock", async () => {
    const t = setup();
    await claimAndStart(t.invoker, "r1");
    const at = new Date(t.clock.now() + 90_500).toUTCString(); // HTTP dates have whole seconds
    t.upstream.answer("r1", ok(429, [{ name: "Retry-After", value: at }]));
    await settle();
    expect(t.scheduler.completions[0]!.outcome.retryAfterSeconds).toBeGreaterThanOrEqual(89);
    expect(t.scheduler.completions[0]!.outcome.retryAfterSeconds).toBeLessThanOrEqual(91);
  });

  it("drops refused claims and asks for redelivery when the scheduler is down", async () => {
    const t = setup();
    t.scheduler.claimImpl = async () => {
      throw new LonghaulError("conflict", "already claimed");
    };
    expect((await t.invoker.claim({ runId: "a", attempt: 1 })).kind).toBe("refused");
    t.scheduler.claimImpl = async () => {
      throw new LonghaulError("not_found", "no such run");
    };
    expect((await t.invoker.claim({ runId: "b", attempt: 1 })).kind).toBe("refused");
    t.scheduler.claimImpl = async () => {
      throw unavailable();
    };
    expect((await t.invoker.claim({ runId: "c", attempt: 1 })).kind).toBe("retry");
    expect(t.capacity.inUse()).toBe(0);
    expect(t.metrics.claimFailures).toEqual(["conflict", "not_found", "unavailable"]);
    expect(t.upstream.requests).toHaveLength(0);
  });

  it("does not claim again a run it already holds (a redelivered dispatch)", async () => {
    const t = setup();
    await claimAndStart(t.invoker, "r1");
    expect((await t.invoker.claim({ runId: "r1", attempt: 1 })).kind).toBe("refused");
    expect(t.scheduler.claims).toHaveLength(1);
  });

  it("reports a timeout when the deadline passes before the app answers", async () => {
    const t = setup();
    t.scheduler.claimImpl = async (d) => claimedRun(d, { deadline: new Date(t.clock.now() + 5_000) });
    await claimAndStart(t.invoker, "r1");
    await t.clock.advance(4_999);
    expect(t.upstream.requests[0]!.signal.aborted).toBe(false);
    await t.clock.advance(1);
    expect(t.upstream.requests[0]!.signal.aborted).toBe(true);
    expect(t.scheduler.completions).toHaveLength(1);
    expect(t.scheduler.completions[0]!.outcome).toMatchObject({ statusCode: 0, errorCode: "timeout" });
    expect(t.metrics.ended).toEqual([{ mode: "async", outcome: "timeout" }]);
    expect(t.capacity.inUse()).toBe(0);
  });

  it("reports a connect error", async () => {
    const t = setup();
    await claimAndStart(t.invoker, "r1");
    t.upstream.answer("r1", { kind: "connect_error", message: "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:1" });
    await settle();
    expect(t.scheduler.completions[0]!.outcome).toMatchObject({
      statusCode: 0,
      errorCode: "connect_error",
      errorMessage: "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:1",
    });
  });

  it("aborts a cancelled call and completes nothing", async () => {
    const t = setup();
    await claimAndStart(t.invoker, "r1");
    expect(t.invoker.cancel("other")).toBe(false);
    expect(t.invoker.cancel("r1")).toBe(true);
    await settle();
    expect(t.upstream.requests[0]!.signal.aborted).toBe(true);
    expect(t.scheduler.completions).toHaveLength(0);
    expect(t.scheduler.releases).toHaveLength(0);
    expect(t.metrics.ended).toEqual([{ mode: "async", outcome: "cancelled" }]);
    expect(t.capacity.inUse()).toBe(0);
    expect(t.clock.pending()).toBe(0); // the deadline timer is gone too
  });

  it("aborts runs whose lease was lost, matching the attempt", async () => {
    const t = setup();
    await claimAndStart(t.invoker, "r1", 3);
    t.invoker.abortLost([{ runId: "r1", attempt: 2 }]);
    await settle();
    expect(t.upstream.requests[0]!.signal.aborted).toBe(false);
    t.invoker.abortLost([{ runId: "r1", attempt: 3 }]);
    await settle();
    expect(t.upstream.requests[0]!.signal.aborted).toBe(true);
    expect(t.scheduler.completions).toHaveLength(0);
    expect(t.metrics.ended).toEqual([{ mode: "async", outcome: "lost" }]);
  });

  it("retries CompleteRun with backoff while the scheduler is unavailable, still holding the run", async () => {
    const t = setup();
    let failures = 3;
    t.scheduler.completeImpl = async () => {
      if (failures-- > 0) throw unavailable();
      return { accepted: true };
    };
    await claimAndStart(t.invoker, "r1");
    t.upstream.answer("r1", ok());
    await settle();
    expect(t.scheduler.completions).toHaveLength(1);
    expect(t.invoker.heldRuns()).toEqual([{ runId: "r1", attempt: 1 }]); // still heartbeated
    await t.clock.advance(100);
    expect(t.scheduler.completions).toHaveLength(2);
    await t.clock.advance(200);
    expect(t.scheduler.completions).toHaveLength(3);
    await t.clock.advance(400);
    expect(t.scheduler.completions).toHaveLength(4);
    expect(t.invoker.heldRuns()).toEqual([]);
    expect(t.metrics.completeFailures).toEqual(["unavailable", "unavailable", "unavailable"]);
  });

  it("stops retrying CompleteRun once the run is reported lost", async () => {
    const t = setup();
    t.scheduler.completeImpl = async () => {
      throw unavailable();
    };
    await claimAndStart(t.invoker, "r1");
    t.upstream.answer("r1", ok());
    await settle();
    t.invoker.abortLost([{ runId: "r1", attempt: 1 }]);
    await t.clock.advance(10_000);
    expect(t.scheduler.completions).toHaveLength(1);
    expect(t.invoker.heldRuns()).toEqual([]);
  });

  it("drops a late outcome the scheduler refuses (accepted=false) without retrying", async () => {
    const t = setup();
    t.scheduler.completeImpl = async () => ({ accepted: false });
    await claimAndStart(t.invoker, "r1");
    t.upstream.answer("r1", ok());
    await t.clock.advance(5_000);
    expect(t.scheduler.completions).toHaveLength(1);
    expect(t.invoker.heldRuns()).toEqual([]);
  });

  it("drains: waits for calls that end in time, releases the others", async () => {
    const t = setup();
    await claimAndStart(t.invoker, "quick");
    await claimAndStart(t.invoker, "slow", 4);
    const draining = t.invoker.drain(30_000);
    await t.clock.advance(1_000);
    t.upstream.answer("quick", ok());
    await t.clock.advance(28_999);
    expect(t.scheduler.releases).toHaveLength(0);
    await t.clock.advance(1);
    await draining;
    expect(t.scheduler.completions.map((c) => c.dispatch.runId)).toEqual(["quick"]);
    expect(t.scheduler.releases).toEqual([{ dispatch: { runId: "slow", attempt: 4 }, reason: "invoker_draining" }]);
    expect(t.upstream.requests[1]!.signal.aborted).toBe(true);
    expect(t.capacity.inUse()).toBe(0);
  });

  it("takes a run a Handoff stream brought on the credit's slot, and calls it as a claimed one", async () => {
    const t = setup(10);
    const slot = t.capacity.acquire();
    expect(t.invoker.take(claimedRun({ runId: "h1", attempt: 1 }), slot)).toBe(true);
    await settle();
    expect(t.scheduler.claims).toEqual([]);
    expect(t.upstream.requests.map((c) => c.url)).toEqual(["http://app.invalid/work?x=1"]);
    expect(t.invoker.heldRuns()).toEqual([{ runId: "h1", attempt: 1 }]);
    expect(t.capacity.inUse()).toBe(1);
    t.upstream.answer("h1", ok());
    await settle();
    expect(t.scheduler.completions.map((c) => c.dispatch)).toEqual([{ runId: "h1", attempt: 1 }]);
    expect(t.capacity.inUse()).toBe(0);
    // The same run again (it is held): refused, its slot freed.
    const again = t.capacity.acquire();
    const held = t.capacity.acquire();
    t.invoker.take(claimedRun({ runId: "h2", attempt: 1 }), held);
    expect(t.invoker.take(claimedRun({ runId: "h2", attempt: 1 }), again)).toBe(false);
    expect(t.capacity.inUse()).toBe(1);
  });

  it("names as owned what it holds, what it is claiming and what it let go of without the scheduler's word", async () => {
    const t = setup(10);
    // A claim waiting for its answer: the scheduler may have made it ours.
    let answerClaim!: () => void;
    t.scheduler.claimImpl = (d) => new Promise((resolve) => (answerClaim = () => resolve(claimedRun(d))));
    const claiming = t.invoker.claim({ runId: "c1", attempt: 1 });
    await settle();
    expect(t.invoker.ownedRuns()).toEqual([{ runId: "c1", attempt: 1 }]);
    // A second dispatch of it meanwhile is refused: both claims would succeed and call it twice.
    expect(await t.invoker.claim({ runId: "c1", attempt: 1 })).toMatchObject({ kind: "refused" });
    expect(t.scheduler.claims).toHaveLength(1);
    answerClaim();
    const decision = await claiming;
    if (decision.kind !== "claimed") throw new Error(`expected a claim, got ${decision.kind}`);
    decision.start();
    await settle();
    expect(t.invoker.ownedRuns()).toEqual([{ runId: "c1", attempt: 1 }]);
    // An outcome the scheduler refused with an error: dropped, but still possibly ours.
    t.scheduler.completeImpl = async () => {
      throw new LonghaulError("invalid_argument", "no");
    };
    t.upstream.answer("c1", ok());
    await settle();
    expect(t.invoker.heldRuns()).toEqual([]);
    expect(t.invoker.ownedRuns()).toEqual([{ runId: "c1", attempt: 1 }]);
    // A claim refused is not ours.
    t.scheduler.claimImpl = async () => {
      throw new LonghaulError("conflict", "taken");
    };
    await t.invoker.claim({ runId: "c2", attempt: 1 });
    expect(t.invoker.ownedRuns()).toEqual([{ runId: "c1", attempt: 1 }]);
  });

  it("drain returns at once when nothing is held", async () => {
    const t = setup();
    await t.invoker.drain(30_000);
    expect(t.clock.pending()).toBe(0);
  });
});
