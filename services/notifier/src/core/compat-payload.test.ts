import { describe, expect, it } from "vitest";
import type { DeliveryInput } from "./ports.js";
import { compatWebhookBody } from "./compat-payload.js";

const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
const base: DeliveryInput = {
  runId: "r1",
  project: "dev",
  app: "cog",
  webhookUrl: "https://h.example/x",
  status: "succeeded",
  statusCode: 200,
  contentType: "application/json",
  body: Buffer.from('{"output":[1]}'),
  bodyTruncated: false,
  errorCode: "",
  errorMessage: "",
  traceparent: "",
  createdAt: t(0),
  startedAt: t(1),
  finishedAt: t(4),
};

describe("compatWebhookBody", () => {
  it("is undefined for a run of Longhaul's own API", () => {
    expect(compatWebhookBody(base, "http://lh")).toBeUndefined();
  });

  it("RunPod's job object for a runpod_job run", () => {
    expect(compatWebhookBody({ ...base, labels: { runpod_job: "j1" } }, "http://lh")).toEqual({
      id: "j1",
      status: "COMPLETED",
      delayTime: 1000,
      executionTime: 3000,
      output: { output: [1] },
    });
    expect(compatWebhookBody({ ...base, status: "failed", statusCode: 500, body: Buffer.from("boom"), labels: { runpod_job: "j1" } }, "")).toMatchObject({
      status: "FAILED",
      error: "the app answered 500: boom",
    });
  });

  it("Replicate's prediction for a replicate=prediction run", () => {
    const p = compatWebhookBody({ ...base, labels: { replicate: "prediction" }, requestBody: Buffer.from('{"input":{"a":1}}') }, "http://lh/");
    expect(p).toMatchObject({ id: "r1", status: "succeeded", input: { a: 1 }, output: [1], error: null, metrics: { predict_time: 3 } });
    expect(p?.urls).toEqual({ get: "http://lh/replicate/v1/predictions/r1", cancel: "http://lh/replicate/v1/predictions/r1/cancel" });
  });
});
