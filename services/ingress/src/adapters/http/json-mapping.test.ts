import { describe, expect, it } from "vitest";
import { appsPb, runsPb } from "@longhaul/shared/proto";
import {
  appFromJson,
  appToJson,
  deliveryToJson,
  listRunsRequestFromQuery,
  parseRunStatus,
  resultToJson,
  runToJson,
} from "./json-mapping.js";

const RS = runsPb.RunStatus;

describe("runToJson", () => {
  it("uses snake_case, lowercase enums, ISO times and null for absent values", () => {
    const run = runsPb.Run.fromPartial({
      id: "0b9e3c1e-8a2f-4a57-9f7e-3b1d2c4e5f60",
      project: "dev",
      app: "echo",
      status: RS.RUN_STATUS_TIMED_OUT,
      mode: "async",
      method: "POST",
      path: "/x",
      attempt: 2,
      maxAttempts: 3,
      timeoutSeconds: 60,
      webhookState: runsPb.WebhookState.WEBHOOK_STATE_PENDING,
      errorCode: "timeout",
      createdAt: new Date("2026-01-01T00:00:00Z"),
      attempts: [{ attempt: 1, invokerId: "inv-1", statusCode: 503, startedAt: new Date("2026-01-01T00:00:01Z") }],
    });
    const json = runToJson(run);
    expect(json).toMatchObject({
      run_id: run.id,
      status: "timed_out",
      webhook_state: "pending",
      webhook_url: null,
      status_code: null,
      error_code: "timeout",
      error_message: null,
      max_attempts: 3,
      created_at: "2026-01-01T00:00:00.000Z",
      finished_at: null,
      attempts: [{ attempt: 1, invoker_id: "inv-1", status_code: 503, started_at: "2026-01-01T00:00:01.000Z", finished_at: null }],
    });
  });

  it("names every status", () => {
    const names = [1, 2, 3, 4, 5, 6, 7, 8].map((s) => runToJson(runsPb.Run.fromPartial({ status: s })).status);
    expect(names).toEqual(["queued", "dispatched", "running", "succeeded", "failed", "timed_out", "cancelled", "expired"]);
    expect(parseRunStatus("succeeded")).toBe(RS.RUN_STATUS_SUCCEEDED);
    expect(() => parseRunStatus("done")).toThrow(/status must be one of/);
  });
});

describe("resultToJson", () => {
  it("gives the body as base64", () => {
    const json = resultToJson({
      runId: "r",
      status: RS.RUN_STATUS_FAILED,
      statusCode: 500,
      headers: [{ name: "content-type", value: "text/plain" }],
      body: Buffer.from("boom"),
      contentType: "text/plain",
      bodyTruncated: false,
      bodyGone: false,
    });
    expect(json).toEqual({
      run_id: "r",
      status: "failed",
      status_code: 500,
      content_type: "text/plain",
      headers: [{ name: "content-type", value: "text/plain" }],
      body_base64: Buffer.from("boom").toString("base64"),
      body_truncated: false,
      body_gone: false,
    });
  });
});

describe("apps", () => {
  it("maps a PUT body to the proto and back", () => {
    const app = appFromJson("echo", {
      url: "http://127.0.0.1:9000",
      timeout_seconds: 30,
      max_concurrency: 4,
      retry: { max_attempts: 3, initial_backoff_seconds: 1.5, max_backoff_seconds: 60, idempotent: true },
      queue_ttl_seconds: 600,
    });
    expect(app).toEqual(
      appsPb.App.fromPartial({
        name: "echo",
        url: "http://127.0.0.1:9000",
        timeoutSeconds: 30,
        maxConcurrency: 4,
        retry: { maxAttempts: 3, initialBackoffSeconds: 1.5, maxBackoffSeconds: 60, idempotent: true },
        queueTtlSeconds: 600,
      }),
    );
    const json = appToJson(app);
    expect(json).toMatchObject({
      name: "echo",
      url: "http://127.0.0.1:9000",
      timeout_seconds: 30,
      max_concurrency: 4,
      retry: { max_attempts: 3, initial_backoff_seconds: 1.5, max_backoff_seconds: 60, idempotent: true },
      queue_ttl_seconds: 600,
    });
    // A GET body can be PUT back as it is.
    expect(appFromJson("echo", json)).toEqual(app);
  });

  it("refuses unknown fields, wrong types and a mismatched name", () => {
    expect(() => appFromJson("echo", { url: "http://x", timeout: 5 })).toThrow(/invalid app/);
    expect(() => appFromJson("echo", { url: "http://x", timeout_seconds: "5" })).toThrow(/timeout_seconds/);
    expect(() => appFromJson("echo", {})).toThrow(/url/);
    expect(() => appFromJson("echo", { url: "http://x", name: "other" })).toThrow(/names app other/);
    expect(() => appFromJson("echo", [1])).toThrow(/invalid app/);
  });
});

describe("listRunsRequestFromQuery", () => {
  it("reads the filters", () => {
    const req = listRunsRequestFromQuery(
      new URLSearchParams("app=echo&status=running&created_after=2026-01-01T00:00:00Z&limit=20&cursor=abc"),
    );
    expect(req).toEqual({
      app: "echo",
      status: RS.RUN_STATUS_RUNNING,
      createdAfter: new Date("2026-01-01T00:00:00Z"),
      createdBefore: undefined,
      statusCodeMin: 0,
      statusCodeMax: 0,
      idPrefix: "",
      labels: {},
      limit: 20,
      cursor: "abc",
    });
    expect(() => listRunsRequestFromQuery(new URLSearchParams("limit=-1"))).toThrow(/limit/);
    expect(() => listRunsRequestFromQuery(new URLSearchParams("created_after=yesterday"))).toThrow(/created_after/);
  });

  it("reads the search filters: time range, status code or class, id prefix, labels", () => {
    const req = listRunsRequestFromQuery(
      new URLSearchParams("created_before=2026-02-01T00:00:00Z&status_code=5xx&id_prefix=0b9e3c1e-8a&label=team:ml&label=job:42"),
    );
    expect(req).toMatchObject({
      createdBefore: new Date("2026-02-01T00:00:00Z"),
      statusCodeMin: 500,
      statusCodeMax: 599,
      idPrefix: "0b9e3c1e-8a",
      labels: { team: "ml", job: "42" },
    });
    expect(listRunsRequestFromQuery(new URLSearchParams("status_code=404"))).toMatchObject({ statusCodeMin: 404, statusCodeMax: 404 });
  });

  it.each([
    ["stauts=failed", /stauts: unknown query parameter; GET \/v1\/runs takes app, status/],
    ["app=a&app=b", /app: given more than once/],
    ["id_prefix=0b9e3c1", /id_prefix must be at least 8/],
    ["id_prefix=", /id_prefix must be at least 8/],
    ["status_code=700", /status_code must be/],
    ["status_code=5XXX", /status_code must be/],
    ["label=team", /label: "team" must be key:value/],
    ["label=team:ml&label=team:cv", /label: team is asked for with two values/],
    ["created_before=May%201", /created_before must be an ISO 8601/],
  ])("refuses %s with a 400 naming the parameter", (q, message) => {
    expect(() => listRunsRequestFromQuery(new URLSearchParams(q))).toThrow(message);
  });
});

describe("deliveryToJson", () => {
  it("maps a delivery and its attempts", () => {
    expect(
      deliveryToJson({
        runId: "r",
        webhookId: "msg_1",
        url: "https://h/w",
        state: "delivered",
        attemptsMade: 1,
        nextAttemptAt: undefined,
        attempts: [{ attempt: 1, durationMs: 12, statusCode: 200, error: "", responseExcerpt: "ok", startedAt: undefined }],
      }),
    ).toEqual({
      run_id: "r",
      webhook_id: "msg_1",
      url: "https://h/w",
      state: "delivered",
      attempts_made: 1,
      next_attempt_at: null,
      attempts: [{ attempt: 1, started_at: null, duration_ms: 12, status_code: 200, error: null, response_excerpt: "ok" }],
    });
  });
});
