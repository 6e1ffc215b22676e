import { describe, expect, it } from "vitest";
import { parseRunpodRequest, runpodJob, runpodStatus } from "./runpod.js";

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
    });
    expect(() => parseRunpodRequest({ prompt: "x" })).toThrow(/input/);
    expect(() => parseRunpodRequest({ input: 1, policy: { executionTimeout: 5 } })).toThrow(/executionTimeout/);
  });

  it("a job carries delayTime and executionTime in ms once known", () => {
    const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
    const run = { createdAt: t(0), startedAt: t(2), finishedAt: t(5), attempt: 1 } as Parameters<typeof runpodJob>[1];
    expect(runpodJob("j", run, "succeeded", { output: 7 })).toEqual({ id: "j", status: "COMPLETED", delayTime: 2000, executionTime: 3000, output: 7 });
    const queued = { createdAt: t(0), attempt: 1 } as Parameters<typeof runpodJob>[1];
    expect(runpodJob("j", queued, "queued")).toEqual({ id: "j", status: "IN_QUEUE" });
  });
});
