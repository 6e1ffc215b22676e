/**
 * The scheduler's core against in-memory fakes of its ports (testing/fake-ports.ts):
 * admission, retry decisions, lease expiry with per-invoker sessions, the
 * reconciler's steps and pace. No Postgres: fast enough for `vitest` in watch
 * mode. The store's SQL is tested against real Postgres in adapters/pg/.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import { createFakeDeps, testApp } from "../testing/fake-ports.js";
import type { AppSettings } from "./model.js";
import type { Handoff } from "./ports.js";
import { createReconciler, startReconcilerLoop } from "./reconciler.js";
import { createRunLifecycle, type Completion } from "./run-lifecycle.js";
import { createRunRegistry } from "./run-registry.js";
import type { SubmitInput } from "./validation.js";

const T0 = new Date("2026-06-01T12:00:00Z");
const TRACE = { traceparent: "", tracestate: "" };
const LEASE_MS = 15_000;

function input(app: string, over: Partial<SubmitInput> = {}): SubmitInput {
  return {
    app,
    method: "POST",
    path: "/work",
    query: "",
    headers: [],
    body: Buffer.from("payload"),
    webhookUrl: "",
    timeoutSeconds: 0,
    priority: 0,
    idempotencyKey: "",
    notBefore: undefined,
    queueTtlSeconds: 0,
    labels: {},
    ...over,
  };
}

function answer(statusCode: number, body = "", over: Partial<Completion> = {}): Completion {
  return { statusCode, headers: [{ name: "content-type", value: "text/plain" }], body: Buffer.from(body), bodyTruncated: false, errorCode: "", errorMessage: "", retryAfterSeconds: 0, ...over };
}

/** The core wired over fakes, with one app. */
async function setUp(app: AppSettings) {
  const fakes = createFakeDeps();
  const registry = createRunRegistry(fakes.deps);
  const lifecycle = createRunLifecycle(fakes.deps);
  await fakes.store.upsertApp("p", app);
  return { ...fakes, registry, lifecycle };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(T0);
});
afterEach(() => {
  vi.useRealTimers();
});

describe("admission", () => {
  it("dispatches a run of an app without a limit at once", async () => {
    const { registry, bus, metrics, store } = await setUp(testApp("a"));
    const { runId, existing } = await registry.submit("p", input("a"), TRACE);
    expect(existing).toBe(false);
    expect(bus.dispatched.map((d) => [d.runId, d.attempt])).toEqual([[runId, 1]]);
    expect(store.runs.get(runId)?.status).toBe("dispatched");
    expect(metrics.accepted).toEqual(["a"]);
  });

  it("keeps a run queued while its app is at its concurrency limit, and says so to watchers", async () => {
    const { registry, bus, store } = await setUp(testApp("a", { maxConcurrency: 1 }));
    const first = await registry.submit("p", input("a"), TRACE);
    const second = await registry.submit("p", input("a"), TRACE);
    expect(bus.dispatched.map((d) => d.runId)).toEqual([first.runId]);
    expect(store.runs.get(second.runId)?.status).toBe("queued");
    expect(bus.changed).toContainEqual({ project: "p", runId: second.runId, status: "queued" });
  });

  it("answers a repeated Idempotency-Key with the first run, and stores one", async () => {
    const { registry, store, metrics } = await setUp(testApp("a"));
    const a = await registry.submit("p", input("a", { idempotencyKey: "k" }), TRACE);
    const b = await registry.submit("p", input("a", { idempotencyKey: "k" }), TRACE);
    expect(b).toEqual({ runId: a.runId, existing: true });
    expect(store.runs.size).toBe(1);
    expect(metrics.accepted).toEqual(["a"]);
  });

  it("refuses bad input with invalid_argument and stores nothing", async () => {
    const { registry, store, bus } = await setUp(testApp("a"));
    await expect(registry.submit("p", input("a", { method: "get" }), TRACE)).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(registry.submit("p", input("a", { timeoutSeconds: 7200 }), TRACE)).rejects.toMatchObject({ code: "invalid_argument" });
    expect(store.runs.size).toBe(0);
    expect(bus.dispatched).toEqual([]);
  });

  it("answers unavailable while the broker is unreachable, storing nothing", async () => {
    const { registry, store, bus } = await setUp(testApp("a"));
    bus.connected = false;
    const err = await registry.submit("p", input("a"), TRACE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LonghaulError);
    expect(err).toMatchObject({ code: "unavailable" });
    expect(store.runs.size).toBe(0);
  });
});

describe("a run's own queue deadline (queue_ttl_seconds)", () => {
  it("is stored as submit + ttl; a run still queued past it never starts, ends expired with its webhook, and frees no slot it never took", async () => {
    const t = await setUp(testApp("a", { maxConcurrency: 1 }));
    const reconciler = createReconciler(t.deps, t.lifecycle);
    const blocker = await t.registry.submit("p", input("a"), TRACE);
    await t.lifecycle.claim(blocker.runId, 1, "inv-1");
    const waiting = await t.registry.submit("p", input("a", { queueTtlSeconds: 5, webhookUrl: "http://127.0.0.1:9/hook" }), TRACE);
    expect(t.store.runs.get(waiting.runId)).toMatchObject({ status: "queued", expires_at: new Date(T0.getTime() + 5_000) });
    // The reconciler is woken to learn of the deadline, and sleeps until it.
    expect(t.wakes.count).toBe(1);
    await reconciler.tick();
    expect(t.store.runs.get(waiting.runId)?.status).toBe("queued");
    expect(reconciler.nextDueAt()).toEqual(new Date(T0.getTime() + 5_000));

    vi.setSystemTime(T0.getTime() + 5_000);
    // The slot frees at the deadline: the waiting run is not dispatched into it.
    await t.lifecycle.complete(blocker.runId, 1, "inv-1", answer(200));
    expect(t.bus.dispatched.map((d) => d.runId)).toEqual([blocker.runId]);
    expect(await reconciler.tick()).toBe(true);
    expect(t.store.runs.get(waiting.runId)).toMatchObject({ status: "expired", error_code: "queue_ttl_exceeded", webhook_state: "pending" });
    expect(t.bus.finished.map((f) => [f.id, f.status])).toContainEqual([waiting.runId, "expired"]);
    expect(t.bus.changed).toContainEqual({ project: "p", runId: waiting.runId, status: "expired" });
    expect(t.metrics.finished).toContain("a:expired");
    expect(t.bus.dispatched.map((d) => d.runId)).toEqual([blocker.runId]);
    expect(t.store.attempts.filter((a) => a.run_id === waiting.runId)).toEqual([]);
  });

  it("a run dispatched before its deadline and not claimed by then is refused at the claim, then expired", async () => {
    const t = await setUp(testApp("a"));
    const reconciler = createReconciler(t.deps, t.lifecycle);
    const { runId } = await t.registry.submit("p", input("a", { queueTtlSeconds: 2 }), TRACE);
    expect(t.store.runs.get(runId)?.status).toBe("dispatched");
    vi.setSystemTime(T0.getTime() + 2_000);
    await expect(t.lifecycle.claim(runId, 1, "inv-1")).rejects.toMatchObject({ code: "conflict" });
    expect(await reconciler.tick()).toBe(true);
    expect(t.store.runs.get(runId)).toMatchObject({ status: "expired", error_code: "queue_ttl_exceeded", started_at: null });
  });

  it("a claim before the deadline starts the run, and the deadline no longer applies to it", async () => {
    const t = await setUp(testApp("a"));
    const reconciler = createReconciler(t.deps, t.lifecycle);
    const { runId } = await t.registry.submit("p", input("a", { queueTtlSeconds: 2 }), TRACE);
    vi.setSystemTime(T0.getTime() + 1_999);
    await t.lifecycle.claim(runId, 1, "inv-1");
    vi.setSystemTime(T0.getTime() + 10_000);
    await t.lifecycle.heartbeat("inv-1", [{ runId, attempt: 1 }]);
    await reconciler.tick();
    expect(t.store.runs.get(runId)?.status).toBe("running");
    expect((await t.lifecycle.complete(runId, 1, "inv-1", answer(200)))?.status).toBe("succeeded");
  });

  it("the app's queue TTL still applies when it is the earlier deadline", async () => {
    const t = await setUp(testApp("a", { maxConcurrency: 1, queueTtlSeconds: 3 }));
    const reconciler = createReconciler(t.deps, t.lifecycle);
    const blocker = await t.registry.submit("p", input("a"), TRACE);
    await t.lifecycle.claim(blocker.runId, 1, "inv-1");
    const waiting = await t.registry.submit("p", input("a", { queueTtlSeconds: 600 }), TRACE);
    vi.setSystemTime(T0.getTime() + 4_000);
    await t.lifecycle.heartbeat("inv-1", [{ runId: blocker.runId, attempt: 1 }]);
    await reconciler.tick();
    expect(t.store.runs.get(waiting.runId)).toMatchObject({ status: "expired", error_code: "queue_ttl_exceeded" });
    expect(t.store.runs.get(waiting.runId)?.error_message).toContain("app's queue_ttl_seconds");
  });

  it("refuses a negative, fractional or absurd ttl, or one that ends before not_before, with invalid_argument, storing nothing", async () => {
    const { registry, store, bus } = await setUp(testApp("a"));
    for (const queueTtlSeconds of [-1, 1.5, 30 * 86_400 + 1, Number.NaN]) {
      const err = await registry.submit("p", input("a", { queueTtlSeconds }), TRACE).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "invalid_argument" });
      expect((err as Error).message).toContain("queue_ttl_seconds");
    }
    const late = input("a", { queueTtlSeconds: 60, notBefore: new Date(T0.getTime() + 60_000) });
    await expect(registry.submit("p", late, TRACE)).rejects.toMatchObject({ code: "invalid_argument" });
    expect(store.runs.size).toBe(0);
    expect(bus.dispatched).toEqual([]);
  });

  it("a manual retry is a new run without the first one's deadline", async () => {
    const t = await setUp(testApp("a", { maxConcurrency: 1 }));
    const reconciler = createReconciler(t.deps, t.lifecycle);
    const blocker = await t.registry.submit("p", input("a"), TRACE);
    await t.lifecycle.claim(blocker.runId, 1, "inv-1");
    const waiting = await t.registry.submit("p", input("a", { queueTtlSeconds: 1 }), TRACE);
    vi.setSystemTime(T0.getTime() + 1_000);
    await t.lifecycle.heartbeat("inv-1", [{ runId: blocker.runId, attempt: 1 }]);
    await reconciler.tick();
    expect(t.store.runs.get(waiting.runId)?.status).toBe("expired");
    const again = await t.registry.retry("p", waiting.runId, TRACE);
    expect(t.store.runs.get(again.runId)).toMatchObject({ status: "queued", expires_at: null });
  });
});

/** A Handoff port over one invoker's credits; `open` false: its stream closed before the send. */
function fakeHandoff(invokerId: string, credits: number, streamId = "00000000-0000-4000-8000-000000000001") {
  const h = { credits, open: true, sent: [] as string[], cancelled: 0 };
  const port: Handoff = {
    reserve() {
      if (h.credits === 0) return undefined;
      h.credits--;
      return {
        invokerId,
        streamId,
        send: (run) => {
          if (h.open) h.sent.push(run.runId);
          return h.open;
        },
        cancel: () => {
          h.cancelled++;
          h.credits++;
        },
      };
    },
  };
  return { h, port };
}

describe("handoff (a run started for an invoker at submit)", () => {
  it("a plain submit is started for the invoker with credit: no dispatch, no claim, the run running for it", async () => {
    const { deps, registry, store, bus } = await setUp(testApp("a"));
    const { h, port } = fakeHandoff("inv-1", 1);
    deps.handoff = port;
    const { runId } = await registry.submit("p", input("a"), TRACE);
    expect(h.sent).toEqual([runId]);
    expect(bus.dispatched).toEqual([]);
    expect(store.runs.get(runId)).toMatchObject({ status: "running", owner: "inv-1" });
    expect(bus.changed.at(-1)).toMatchObject({ runId, status: "running" });
    // No credit left: the next run is dispatched.
    const second = await registry.submit("p", input("a"), TRACE);
    expect(bus.dispatched.map((d) => d.runId)).toEqual([second.runId]);
  });

  it("gives the credit back when the run is not started for it (a key, a delay, a limit, a refusal)", async () => {
    const { deps, registry, store } = await setUp(testApp("a"));
    await store.upsertApp("p", testApp("limited", { maxConcurrency: 1 }));
    const { h, port } = fakeHandoff("inv-1", 1);
    deps.handoff = port;
    await registry.submit("p", input("a", { idempotencyKey: "k" }), TRACE);
    await registry.submit("p", input("a", { notBefore: new Date(T0.getTime() + 60_000) }), TRACE);
    await registry.submit("p", input("limited"), TRACE);
    await expect(registry.submit("p", input("missing"), TRACE)).rejects.toMatchObject({ code: "not_found" });
    expect(h).toMatchObject({ credits: 1, cancelled: 4, sent: [] });
  });

  it("a run whose invoker's stream closed before the send goes back to the queue and is dispatched", async () => {
    const { deps, registry, store, bus } = await setUp(testApp("a"));
    const { h, port } = fakeHandoff("inv-1", 1);
    h.open = false;
    deps.handoff = port;
    const { runId } = await registry.submit("p", input("a"), TRACE);
    expect(store.runs.get(runId)).toMatchObject({ status: "dispatched", owner: null, started_at: null });
    expect(store.attempts.filter((a) => a.run_id === runId)).toEqual([]);
    expect(bus.dispatched.map((d) => d.runId)).toEqual([runId]);
  });

  it("hands back only what was started on a stream the invoker saw end and does not hold; never a claimed run", async () => {
    const { deps, registry, store, bus, lifecycle } = await setUp(testApp("a"));
    const S1 = "00000000-0000-4000-8000-0000000000a1";
    const S2 = "00000000-0000-4000-8000-0000000000a2";
    deps.handoff = fakeHandoff("inv-1", 2, S1).port;
    const held = await registry.submit("p", input("a"), TRACE);
    const lost = await registry.submit("p", input("a"), TRACE);
    deps.handoff = fakeHandoff("inv-1", 1, S2).port;
    const current = await registry.submit("p", input("a"), TRACE);
    // A run claimed by the same invoker, not held yet (its answer is on its way).
    deps.handoff = undefined;
    const claimed = await registry.submit("p", input("a"), TRACE);
    await lifecycle.claim(claimed.runId, 1, "inv-1");
    bus.dispatched.length = 0;
    expect(await lifecycle.returnUnreceived("inv-1", [{ runId: held.runId, attempt: 1 }], [S1])).toBe(1);
    expect(bus.dispatched.map((d) => d.runId)).toEqual([lost.runId]);
    expect(store.runs.get(lost.runId)?.status).toBe("dispatched");
    for (const r of [held, current, claimed]) expect(store.runs.get(r.runId)?.status).toBe("running");
    // Another invoker naming the stream hands back nothing of inv-1's.
    expect(await lifecycle.returnUnreceived("inv-2", [], [S1, S2])).toBe(0);
    // A heartbeat naming an ended stream repairs too.
    expect(await lifecycle.heartbeat("inv-1", [{ runId: held.runId, attempt: 1 }], [S2])).toEqual([]);
    expect(store.runs.get(current.runId)?.status).toBe("dispatched");
    expect(store.runs.get(claimed.runId)?.status).toBe("running");
  });
});

describe("retry decisions", () => {
  it("a success ends the run, and run.finished carries the answer inline for the notifier", async () => {
    const { registry, lifecycle, bus, metrics, store } = await setUp(testApp("a"));
    const { runId } = await registry.submit("p", input("a", { webhookUrl: "http://127.0.0.1:9/hook" }), TRACE);
    await lifecycle.claim(runId, 1, "inv-1");
    const run = await lifecycle.complete(runId, 1, "inv-1", answer(200, "done"));
    expect(run?.status).toBe("succeeded");
    expect(store.runs.get(runId)?.webhook_state).toBe("pending");
    expect(bus.finished).toHaveLength(1);
    expect(bus.finished[0]).toMatchObject({ id: runId, status: "succeeded", delivery: { statusCode: 200, contentType: "text/plain" } });
    expect(bus.finished[0]?.delivery?.body.toString()).toBe("done");
    expect(metrics.finished).toEqual(["a:succeeded"]);
  });

  it("an app's refusal (503) is retried after its backoff, and the reconciler is woken to start it", async () => {
    const { registry, lifecycle, bus, store, wakes } = await setUp(testApp("a", { maxAttempts: 3, initialBackoffSeconds: 4 }));
    const { runId } = await registry.submit("p", input("a"), TRACE);
    await lifecycle.claim(runId, 1, "inv-1");
    const run = await lifecycle.complete(runId, 1, "inv-1", answer(503));
    expect(run).toMatchObject({ status: "queued", attempt: 2 });
    expect(store.runs.get(runId)!.not_before!.getTime()).toBeGreaterThan(T0.getTime());
    expect(wakes.count).toBe(1);
    expect(bus.finished).toEqual([]);
  });

  it("a 500 of an app not declared idempotent is final: it is never called twice", async () => {
    const { registry, lifecycle, bus, wakes } = await setUp(testApp("a", { maxAttempts: 3 }));
    const { runId } = await registry.submit("p", input("a"), TRACE);
    await lifecycle.claim(runId, 1, "inv-1");
    const run = await lifecycle.complete(runId, 1, "inv-1", answer(500, "boom"));
    expect(run).toMatchObject({ status: "failed", attempt: 1, error_code: "app_error" });
    expect(wakes.count).toBe(0);
    expect(bus.dispatched).toHaveLength(1);
  });

  it("a late result from an invoker that no longer holds the attempt is refused and changes nothing", async () => {
    const { registry, lifecycle, store } = await setUp(testApp("a"));
    const { runId } = await registry.submit("p", input("a"), TRACE);
    await lifecycle.claim(runId, 1, "inv-1");
    expect(await lifecycle.complete(runId, 1, "inv-2", answer(200))).toBeUndefined();
    expect(store.runs.get(runId)?.status).toBe("running");
    expect(await lifecycle.complete(runId, 1, "inv-1", answer(200))).toMatchObject({ status: "succeeded" });
    expect(await lifecycle.complete(runId, 1, "inv-1", answer(500))).toBeUndefined();
    expect(store.runs.get(runId)?.status).toBe("succeeded");
  });

  it("a claim of an attempt that is not waiting is a conflict", async () => {
    const { registry, lifecycle } = await setUp(testApp("a"));
    const { runId } = await registry.submit("p", input("a"), TRACE);
    await lifecycle.claim(runId, 1, "inv-1");
    await expect(lifecycle.claim(runId, 1, "inv-2")).rejects.toMatchObject({ code: "conflict" });
  });
});

describe("lease expiry with per-invoker sessions", () => {
  /** Two invokers each holding one run of `app`, the reconciler made a lease after start. */
  async function twoInvokers(app: AppSettings) {
    const t = await setUp(app);
    const reconciler = createReconciler(t.deps, t.lifecycle);
    const a = await t.registry.submit("p", input(app.name), TRACE);
    const b = await t.registry.submit("p", input(app.name), TRACE);
    await t.lifecycle.claim(a.runId, 1, "inv-a");
    await t.lifecycle.claim(b.runId, 1, "inv-b");
    return { ...t, reconciler, a: a.runId, b: b.runId };
  }

  it("ends only the runs of the invoker that stopped renewing; one that is not idempotent fails as interrupted", async () => {
    const t = await twoInvokers(testApp("a", { maxAttempts: 3 }));
    vi.setSystemTime(T0.getTime() + LEASE_MS / 2);
    expect(await t.lifecycle.heartbeat("inv-a", [{ runId: t.a, attempt: 1 }])).toEqual([]);
    vi.setSystemTime(T0.getTime() + LEASE_MS + 1_000);
    expect(await t.reconciler.tick()).toBe(true);
    expect(t.store.runs.get(t.a)?.status).toBe("running");
    expect(t.store.runs.get(t.b)).toMatchObject({ status: "failed", error_code: "interrupted", attempt: 1 });
    // Never called twice: no second dispatch of b.
    expect(t.bus.dispatched.filter((d) => d.runId === t.b)).toHaveLength(1);
  });

  it("retries the lost run of an idempotent app, and the reconciler dispatches it again once its backoff passed", async () => {
    const t = await twoInvokers(testApp("a", { maxAttempts: 3, idempotent: true, initialBackoffSeconds: 1 }));
    vi.setSystemTime(T0.getTime() + LEASE_MS + 1_000);
    await t.lifecycle.heartbeat("inv-a", [{ runId: t.a, attempt: 1 }]);
    await t.reconciler.tick();
    expect(t.store.runs.get(t.b)).toMatchObject({ status: "queued", attempt: 2 });
    vi.setSystemTime(T0.getTime() + LEASE_MS + 10_000);
    await t.lifecycle.heartbeat("inv-a", [{ runId: t.a, attempt: 1 }]);
    await t.reconciler.tick();
    expect(t.bus.dispatched.filter((d) => d.runId === t.b).map((d) => d.attempt)).toEqual([1, 2]);
    expect(t.store.runs.get(t.a)?.status).toBe("running");
  });

  it("tells an invoker that comes back which of its runs it lost", async () => {
    const t = await twoInvokers(testApp("a"));
    vi.setSystemTime(T0.getTime() + LEASE_MS + 1_000);
    await t.reconciler.tick();
    const lost = await t.lifecycle.heartbeat("inv-b", [{ runId: t.b, attempt: 1 }]);
    expect(lost).toEqual([{ runId: t.b, attempt: 1 }]);
    // Its late result is refused.
    expect(await t.lifecycle.complete(t.b, 1, "inv-b", answer(200))).toBeUndefined();
  });

  it("a scheduler that has just started waits one lease before it ends anything as lost", async () => {
    const t = await setUp(testApp("a"));
    const { runId } = await t.registry.submit("p", input("a"), TRACE);
    await t.lifecycle.claim(runId, 1, "inv-1");
    vi.setSystemTime(T0.getTime() + LEASE_MS + 1_000);
    // Started now: the invoker's failed heartbeats while none answered are not its loss.
    const fresh = createReconciler(t.deps, t.lifecycle);
    await fresh.tick();
    expect(t.store.runs.get(runId)?.status).toBe("running");
    vi.setSystemTime(T0.getTime() + 2 * LEASE_MS + 2_000);
    await fresh.tick();
    expect(t.store.runs.get(runId)?.status).toBe("failed");
  });
});

describe("reconciler steps", () => {
  it("a failing repair does not keep the others from running", async () => {
    const t = await setUp(testApp("a", { maxConcurrency: 1 }));
    const reconciler = createReconciler(t.deps, t.lifecycle);
    const first = await t.registry.submit("p", input("a"), TRACE);
    const second = await t.registry.submit("p", input("a"), TRACE);
    await t.lifecycle.claim(first.runId, 1, "inv-1");
    // The slot frees without a dispatch from the completion path: the app's limit is lifted.
    await t.store.upsertApp("p", testApp("a", { maxConcurrency: 2 }));
    vi.setSystemTime(T0.getTime() + 2 * LEASE_MS + 1_000);
    t.store.fail("expiredLeases", new Error("leases step broke"));
    expect(await reconciler.tick()).toBe(true);
    expect(t.store.runs.get(second.runId)?.status).toBe("dispatched");
  });

  it("a failed probe runs no repair and keeps the full pace", async () => {
    const t = await setUp(testApp("a"));
    const reconciler = createReconciler(t.deps, t.lifecycle);
    t.store.fail("dueWork", new Error("postgres is away"));
    expect(await reconciler.tick()).toBe(true);
  });

  it("an idle pass says so, so the loop slows down", async () => {
    const t = await setUp(testApp("a"));
    expect(await createReconciler(t.deps, t.lifecycle).tick()).toBe(false);
  });
});

describe("the reconciler's pace", () => {
  it("doubles the pause while passes find nothing, up to the idle pause, and a wake brings it back", async () => {
    vi.useRealTimers();
    vi.useFakeTimers();
    const at: number[] = [];
    let busy = false;
    const loop = startReconcilerLoop(
      {
        tick: async () => {
          at.push(Date.now());
          return busy;
        },
      },
      { tickMs: 100, idleTickMs: 400 },
    );
    const start = Date.now();
    await vi.advanceTimersByTimeAsync(100 + 200 + 400 + 400);
    expect(at.map((t) => t - start)).toEqual([100, 300, 700, 1100]);
    busy = true;
    loop.wake();
    await vi.advanceTimersByTimeAsync(100);
    expect(at.at(-1)! - start).toBe(1200);
    await vi.advanceTimersByTimeAsync(100);
    expect(at.at(-1)! - start).toBe(1300);
    await loop.stop();
    const passes = at.length;
    await vi.advanceTimersByTimeAsync(1000);
    expect(at).toHaveLength(passes);
  });

  it("sleeps until the first waiting run is due rather than the whole idle pause, and a wake during a pass counts", async () => {
    vi.useRealTimers();
    vi.useFakeTimers();
    const at: number[] = [];
    let dueAt: Date | undefined;
    let release: (() => void) | undefined;
    const loop = startReconcilerLoop(
      {
        tick: async () => {
          at.push(Date.now());
          if (release === undefined && at.length === 4) await new Promise<void>((r) => (release = r));
          return false;
        },
        nextDueAt: () => dueAt,
      },
      { tickMs: 100, idleTickMs: 1_000 },
    );
    const start = Date.now();
    await vi.advanceTimersByTimeAsync(100 + 200);
    // A run becomes due 250 ms from now: the pass after the next pause comes then, not 400 ms later.
    dueAt = new Date(Date.now() + 650);
    await vi.advanceTimersByTimeAsync(400);
    expect(at.map((t) => t - start)).toEqual([100, 300, 700]);
    dueAt = new Date(start + 950);
    await vi.advanceTimersByTimeAsync(250);
    expect(at.at(-1)! - start).toBe(950);
    // Woken while that pass runs: the next pass comes at full rate.
    dueAt = undefined;
    loop.wake();
    release!();
    await vi.advanceTimersByTimeAsync(100);
    expect(at.at(-1)! - start).toBe(1050);
    await loop.stop();
  });
});
