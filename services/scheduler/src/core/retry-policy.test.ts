import { describe, expect, it } from "vitest";
import type { AppSettings, AttemptOutcome } from "./model.js";
import { backoffSeconds, decide } from "./retry-policy.js";

const app: AppSettings = {
  name: "a",
  url: "http://x",
  timeoutSeconds: 60,
  maxConcurrency: 0,
  maxAttempts: 3,
  initialBackoffSeconds: 2,
  maxBackoffSeconds: 10,
  idempotent: false,
  queueTtlSeconds: 0,
};
const http = (statusCode: number, retryAfterSeconds = 0): AttemptOutcome => ({ statusCode, errorCode: "", errorMessage: "", retryAfterSeconds });
const error = (errorCode: string): AttemptOutcome => ({ statusCode: 0, errorCode, errorMessage: "boom", retryAfterSeconds: 0 });
const half = () => 0.5;

describe("decide", () => {
  it("succeeds on any 2xx", () => {
    expect(decide(app, 1, 3, http(200))).toEqual({ kind: "succeeded" });
    expect(decide(app, 1, 3, http(204))).toEqual({ kind: "succeeded" });
  });

  it.each([429, 503])("retries %i: the app's own refusal", (code) => {
    expect(decide(app, 1, 3, http(code), half)).toMatchObject({ kind: "retry", errorCode: "app_error" });
  });

  it.each([400, 404, 500, 501, 502, 504])("fails %i at once when the app is not idempotent (a proxy may have forwarded it)", (code) => {
    expect(decide(app, 1, 3, http(code), half)).toMatchObject({ kind: "final", status: "failed", errorCode: "app_error" });
  });

  it("retries any failure of an idempotent app", () => {
    expect(decide({ ...app, idempotent: true }, 1, 3, http(500), half)).toMatchObject({ kind: "retry" });
    expect(decide({ ...app, idempotent: true }, 1, 3, error("timeout"), half)).toMatchObject({ kind: "retry", errorCode: "timeout" });
  });

  it("retries a call that never connected; never one that may have reached a non-idempotent app", () => {
    expect(decide(app, 1, 3, error("connect_error"), half)).toMatchObject({ kind: "retry", errorCode: "connect_error" });
    expect(decide(app, 1, 3, error("interrupted"), half)).toMatchObject({ kind: "final", status: "failed", errorCode: "interrupted" });
    expect(decide(app, 1, 3, error("timeout"), half)).toMatchObject({ kind: "final", status: "timed_out", errorCode: "timeout" });
  });

  it("retries an interrupted call of an idempotent app", () => {
    expect(decide({ ...app, idempotent: true }, 1, 3, error("interrupted"), half)).toMatchObject({ kind: "retry", errorCode: "interrupted" });
  });

  it("reads the error code of older invokers as interrupted, and unknown codes too", () => {
    expect(decide(app, 1, 3, error("invoker_lost"), half)).toMatchObject({ kind: "final", errorCode: "interrupted" });
    expect(decide(app, 1, 3, error("something_new"), half)).toMatchObject({ kind: "final", errorCode: "interrupted" });
  });

  it("fails once the attempts are used up", () => {
    expect(decide(app, 3, 3, http(503), half)).toMatchObject({ kind: "final", status: "failed" });
    expect(decide({ ...app, idempotent: true }, 3, 3, error("interrupted"), half)).toMatchObject({ kind: "final", errorCode: "interrupted" });
  });

  it("honours Retry-After, and gives up on one over an hour", () => {
    expect(decide(app, 1, 3, http(429, 30), half)).toMatchObject({ kind: "retry", delaySeconds: 30 });
    expect(decide(app, 1, 3, http(429, 7200), half)).toMatchObject({ kind: "final" });
  });
});

describe("backoffSeconds", () => {
  it("doubles per attempt within ±20 % and caps at the maximum", () => {
    expect(backoffSeconds(app, 1, 0, half)).toBe(2);
    expect(backoffSeconds(app, 2, 0, half)).toBe(4);
    expect(backoffSeconds(app, 5, 0, half)).toBe(10);
    expect(backoffSeconds(app, 1, 0, () => 0)).toBeCloseTo(1.6);
    expect(backoffSeconds(app, 1, 0, () => 1)).toBeCloseTo(2.4);
  });
});
