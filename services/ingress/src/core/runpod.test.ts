import { describe, expect, it } from "vitest";
import { isRunpodExpired, parseRunpodRequest, runpodJob, runpodQueueTtlSeconds, runpodRetryQueueTtlSeconds, runpodStatus, runpodTimeoutSeconds } from "./runpod.js";

describe("RunPod mapping", () => {
  it("names every Longhaul status as RunPod does", () => {
    expect(["queued", "dispatched", "running", "succeeded", "failed", "timed_out", "cancelled", "expired"].map(runpodStatus)).toEqual([
      "IN_QUEUE",
      "IN_QUEUE",
      "IN_PROGRESS",
      "COMPLETED",
      "FAILED",
      "TIMED_OUT",
      "CANCELLED",
      "TIMED_OUT",
    ]);
  });

  it("takes input, webhook and policy; refuses a body without input", () => {
    expect(parseRunpodRequest({ input: { a: 1 }, webhook: "https://h.example/x", policy: { executionTimeout: 1500, lowPriority: true } })).toEqual({
      input: { a: 1 },
      webhook: "https://h.example/x",
      timeoutSeconds: 2,
      priority: -10,
      ttlMs: undefined,
    });
    expect(() => parseRunpodRequest({ prompt: "x" })).toThrow(/input/);
    expect(() => parseRunpodRequest({ input: 1, policy: { executionTimeout: 5 } })).toThrow(/executionTimeout/);
  });

  it("policy.ttl bounds the run's timeout, and the job expires at submit + ttl", () => {
    const withTtl = parseRunpodRequest({ input: {}, policy: { ttl: 4500 } });
    expect(withTtl.ttlMs).toBe(4500);
    expect(runpodTimeoutSeconds(withTtl, 600)).toBe(5);
    expect(runpodTimeoutSeconds(withTtl, 3)).toBe(3);
    expect(runpodTimeoutSeconds(parseRunpodRequest({ input: {}, policy: { ttl: 60_000, executionTimeout: 2000 } }), 600)).toBe(2);
    expect(runpodTimeoutSeconds(parseRunpodRequest({ input: {}, policy: { executionTimeout: 2000 } }), 600)).toBe(2);
    expect(isRunpodExpired({ runpod_expires: "1000" }, 999)).toBe(false);
    expect(isRunpodExpired({ runpod_expires: "1000" }, 1000)).toBe(true);
    expect(isRunpodExpired({ runpod_job: "j" }, Number.MAX_SAFE_INTEGER)).toBe(false);
  });

  it("policy.ttl is the run's queue deadline in whole seconds, rounded down so the job never starts past it", () => {
    expect(runpodQueueTtlSeconds(parseRunpodRequest({ input: {}, policy: { ttl: 4500 } }))).toBe(4);
    expect(runpodQueueTtlSeconds(parseRunpodRequest({ input: {}, policy: { ttl: 1000 } }))).toBe(1);
    expect(runpodQueueTtlSeconds(parseRunpodRequest({ input: {}, policy: { ttl: 604_800_000 } }))).toBe(604_800);
    expect(runpodQueueTtlSeconds(parseRunpodRequest({ input: {} }))).toBe(0);
    for (const ttl of [0, -1000, 999, 604_800_001, 1500.5, "60000", null]) {
      expect(() => parseRunpodRequest({ input: {}, policy: { ttl } })).toThrow(/policy\.ttl/);
    }
  });

  it("a retry's queue deadline: the first run's again, but never past the job's policy.ttl", () => {
    const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms);
    const T0 = at(0).getTime();
    // A job sent with a 60 s ttl, retried 20 s later: 40 s left of its lifetime, not 60 again.
    const job = { createdAt: at(0), expiresAt: at(60_000), labels: { runpod_job: "j", runpod_expires: String(T0 + 60_500) } };
    expect(runpodRetryQueueTtlSeconds(job, T0 + 20_000)).toBe(40);
    expect(runpodRetryQueueTtlSeconds(job, T0 + 59_400)).toBe(1);
    expect(() => runpodRetryQueueTtlSeconds(job, T0 + 59_600)).toThrow(/policy\.ttl/);
    // A deadline of its own without a ttl (X-Longhaul-Queue-Ttl on a run labelled as a job): the same length again, from now.
    expect(runpodRetryQueueTtlSeconds({ createdAt: at(0), expiresAt: at(300_004), labels: { runpod_job: "j" } }, T0 + 999_000)).toBe(300);
    // Neither: no deadline, as before.
    expect(runpodRetryQueueTtlSeconds({ createdAt: at(0), expiresAt: undefined, labels: { runpod_job: "j" } }, T0 + 5_000)).toBe(0);
  });

  it("a job carries delayTime and executionTime in ms once known", () => {
    const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
    const run = { createdAt: t(0), startedAt: t(2), finishedAt: t(5), attempt: 1 } as Parameters<typeof runpodJob>[1];
    expect(runpodJob("j", run, "succeeded", { output: 7 })).toEqual({ id: "j", status: "COMPLETED", delayTime: 2000, executionTime: 3000, output: 7 });
    const queued = { createdAt: t(0), attempt: 1 } as Parameters<typeof runpodJob>[1];
    expect(runpodJob("j", queued, "queued")).toEqual({ id: "j", status: "IN_QUEUE" });
  });
});
