import { describe, expect, it } from "vitest";
import { cogOutput, parsePredictionRequest, preferWaitSeconds, replicateStatus } from "./replicate.js";

describe("Replicate mapping", () => {
  it("statuses", () => {
    expect(["queued", "running", "succeeded", "failed", "timed_out", "cancelled", "expired"].map(replicateStatus)).toEqual([
      "starting",
      "processing",
      "succeeded",
      "failed",
      "failed",
      "canceled",
      "failed",
    ]);
  });

  it("Prefer: wait and wait=N (at most 60 s)", () => {
    expect([preferWaitSeconds(undefined), preferWaitSeconds("wait"), preferWaitSeconds("wait=5"), preferWaitSeconds("wait=600"), preferWaitSeconds("respond-async")]).toEqual([0, 60, 5, 60, 0]);
  });

  it("the app: version, or the model's name from the path; a 422 for Replicate's bad input", () => {
    expect(parsePredictionRequest({ version: "cog", input: { a: 1 } }).app).toBe("cog");
    expect(parsePredictionRequest({ input: {} }, "named").app).toBe("named");
    expect(() => parsePredictionRequest({ input: {} })).toThrow(/version/);
    expect(() => parsePredictionRequest({ version: "x", input: "no" })).toThrow(/input/);
    expect(() => parsePredictionRequest({ version: "x", input: {}, extra: 1 })).toThrow();
  });

  it("output: Cog's output field, else the whole answer", () => {
    expect(cogOutput({ output: [1, 2], status: "succeeded" })).toEqual([1, 2]);
    expect(cogOutput({ result: 1 })).toEqual({ result: 1 });
    expect(cogOutput("text")).toBe("text");
  });
});
