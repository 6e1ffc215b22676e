import { describe, expect, it } from "vitest";
import { FINISHED_RUN_STATUSES, RUN_STATUSES } from "@longhaul/shared/domain";
import {
  bucketLabel,
  compareRuns,
  deliveryRate,
  formatBytes,
  isFinished,
  formatDuration,
  formatTime,
  fromLocalInput,
  parseLabelList,
  prettyBody,
  runDurationMs,
  runMatches,
  stackBars,
  statsTotals,
  timeline,
  toLocalInput,
  type RunFilters,
} from "./format.js";
import { searchTarget } from "./search.js";
import type { Delivery, Run } from "./types.js";

// The dashboard's pure helpers (they run in Node as well as in the browser).

function run(over: Partial<Run> = {}): Run {
  return {
    run_id: "00000000-0000-4000-8000-000000000001",
    project: "dev",
    app: "a",
    status: "queued",
    mode: "async",
    method: "POST",
    path: "/x",
    attempt: 0,
    max_attempts: 3,
    priority: 0,
    timeout_seconds: 60,
    webhook_url: null,
    webhook_state: "none",
    status_code: null,
    error_code: null,
    error_message: null,
    retry_of: null,
    idempotency_key: null,
    created_at: "2026-05-01T12:00:00.000Z",
    not_before: null,
    expires_at: null,
    dispatched_at: null,
    started_at: null,
    finished_at: null,
    attempts: [],
    ...over,
  };
}

describe("formatting", () => {
  it("formats durations in the units that matter", () => {
    expect([null, 0, 850, 12_340, 245_000, 7_380_000].map(formatDuration)).toEqual(["—", "0 ms", "850 ms", "12.3 s", "4 m 05 s", "2 h 03 m"]);
  });

  it("formats times short today and dated otherwise (local time)", () => {
    const now = new Date(2026, 4, 1, 18, 0, 0);
    expect(formatTime(new Date(2026, 4, 1, 14, 3, 7).toISOString(), now)).toBe("14:03:07");
    expect(formatTime(new Date(2026, 3, 30, 9, 5, 0).toISOString(), now)).toBe("2026-04-30 09:05:00");
    expect(formatTime(null, now)).toBe("—");
  });

  it("formats sizes, and pretty-prints JSON bodies only", () => {
    expect([10, 2048, 3 * 1024 * 1024].map(formatBytes)).toEqual(["10 B", "2.0 KiB", "3.0 MiB"]);
    expect(prettyBody('{"a":[1,2]}', "application/json")).toBe('{\n  "a": [\n    1,\n    2\n  ]\n}');
    expect(prettyBody('[{"a":1}]', null)).toBe('[\n  {\n    "a": 1\n  }\n]');
    expect(prettyBody('{"cut": "of', "application/json")).toBe('{"cut": "of');
    expect(prettyBody("plain {text}", "text/plain")).toBe("plain {text}");
  });

  it("measures a run from its first attempt's start to its end, or to now while it runs", () => {
    const started = "2026-05-01T12:00:01.000Z";
    const now = Date.parse("2026-05-01T12:00:11.000Z");
    expect(runDurationMs(run(), now)).toBeNull();
    expect(runDurationMs(run({ status: "running", started_at: started }), now)).toBe(10_000);
    expect(runDurationMs(run({ status: "succeeded", started_at: started, finished_at: "2026-05-01T12:00:03.500Z" }), now)).toBe(2500);
    expect(runDurationMs(run({ status: "expired", finished_at: "2026-05-01T12:01:00.000Z" }), now)).toBeNull();
  });

  it("orders runs newest first, ties by id", () => {
    const a = run({ run_id: "a", created_at: "2026-05-01T12:00:00.000Z" });
    const b = run({ run_id: "b", created_at: "2026-05-01T12:00:01.000Z" });
    const c = run({ run_id: "c", created_at: "2026-05-01T12:00:00.000Z" });
    expect([a, b, c].sort(compareRuns).map((r) => r.run_id)).toEqual(["b", "c", "a"]);
  });
});

describe("timeline", () => {
  it("puts every step of a run and its webhook in time order", () => {
    const r = run({
      status: "succeeded",
      status_code: 200,
      dispatched_at: "2026-05-01T12:00:05.000Z",
      finished_at: "2026-05-01T12:00:09.000Z",
      attempts: [
        { attempt: 1, invoker_id: "inv-1", started_at: "2026-05-01T12:00:01.000Z", finished_at: "2026-05-01T12:00:02.000Z", status_code: 503, error_code: "app_error", error_message: null },
        { attempt: 2, invoker_id: "inv-2", started_at: "2026-05-01T12:00:06.000Z", finished_at: "2026-05-01T12:00:09.000Z", status_code: 200, error_code: null, error_message: null },
      ],
    });
    const d: Delivery = {
      run_id: r.run_id,
      webhook_id: "msg_1",
      url: "https://hooks.example/x",
      state: "pending",
      attempts_made: 1,
      next_attempt_at: "2026-05-01T12:00:40.000Z",
      attempts: [{ attempt: 1, started_at: "2026-05-01T12:00:10.000Z", duration_ms: 30, status_code: null, error: "connect ECONNREFUSED", response_excerpt: null }],
    };
    const steps = timeline(r, d);
    expect(steps.map((s) => s.label)).toEqual([
      "Accepted",
      "Attempt 1 started",
      "Attempt 1 ended",
      "Dispatched",
      "Attempt 2 started",
      "Attempt 2 ended",
      "Finished succeeded",
      "Webhook attempt 1",
      "Next webhook attempt",
    ]);
    expect(steps.filter((s) => s.bad).map((s) => s.label)).toEqual(["Attempt 1 ended", "Webhook attempt 1"]);
    expect(steps[2]!.detail).toBe("HTTP 503 · app_error · 1.0 s");
    expect(steps[7]!.detail).toBe("connect ECONNREFUSED · 30 ms");
  });
});

describe("overview helpers", () => {
  it("stacks bars bottom first, a missing value counting as zero", () => {
    expect(stackBars([[1, 0, 2], [3, null, 1]])).toEqual([
      { y0: [0, 0, 0], y1: [1, 0, 2] },
      { y0: [1, 0, 2], y1: [4, 0, 3] },
    ]);
    expect(stackBars([])).toEqual([]);
  });

  it("names buckets by local time, with the day for longer windows", () => {
    const now = new Date(2026, 4, 1, 15, 0);
    expect(bucketLabel(new Date(2026, 4, 1, 14, 5).getTime() / 1000, 60, now)).toBe("14:05");
    expect(bucketLabel(new Date(2026, 3, 29, 8, 0).getTime() / 1000, 7200, now)).toBe("04-29 08:00");
    expect(bucketLabel(new Date(2026, 4, 1, 8, 0).getTime() / 1000, 900, now)).toBe("08:00");
  });

  it("sums buckets and rates deliveries", () => {
    const b = { succeeded: 3, failed: 1, timed_out: 1, cancelled: 0, expired: 1, webhook_delivered: 2, webhook_failed: 1 };
    expect(statsTotals([b, b])).toMatchObject({ runs: 12, succeeded: 6, webhook_failed: 2 });
    expect(deliveryRate(2, 1)).toBe(66.7);
    expect(deliveryRate(0, 0)).toBeNull();
  });
});

describe("run filters", () => {
  const none: RunFilters = { app: "", status: "", status_code: "", labels: [], created_after: "", created_before: "", id_prefix: "" };
  const r = run({ status: "failed", status_code: 502, labels: { team: "ml", at: "09:00" }, run_id: "0b9e3c1e-8a2f-4a57-9f7e-3b1d2c4e5f60" });

  it("match a run as the API would", () => {
    expect(runMatches(r, none)).toBe(true);
    expect(runMatches(r, { ...none, status_code: "502" })).toBe(true);
    expect(runMatches(r, { ...none, status_code: "5xx" })).toBe(true);
    expect(runMatches(r, { ...none, status_code: "4xx" })).toBe(false);
    expect(runMatches(r, { ...none, labels: ["team:ml", "at:09:00"] })).toBe(true);
    expect(runMatches(r, { ...none, labels: ["team:cv"] })).toBe(false);
    expect(runMatches(r, { ...none, id_prefix: "0B9E3C1E-8A" })).toBe(true);
    expect(runMatches(r, { ...none, id_prefix: "0b9e3c1f" })).toBe(false);
    expect(runMatches(r, { ...none, created_after: "2026-05-01T11:00:00Z", created_before: "2026-05-01T13:00:00Z" })).toBe(true);
    expect(runMatches(r, { ...none, created_before: "2026-05-01T12:00:00Z" })).toBe(false);
    expect(runMatches(run(), { ...none, status_code: "2xx" })).toBe(false);
  });

  it("read labels and times from the inputs", () => {
    expect(parseLabelList(" team:ml, job:42  env:prod ")).toEqual(["team:ml", "job:42", "env:prod"]);
    expect(parseLabelList("")).toEqual([]);
    const iso = new Date(2026, 4, 1, 9, 30).toISOString();
    expect(toLocalInput(iso)).toBe("2026-05-01T09:30");
    expect(fromLocalInput("2026-05-01T09:30")).toBe(iso);
    expect(toLocalInput("")).toBe("");
    expect(fromLocalInput("")).toBe("");
  });
});

describe("search box", () => {
  it("opens a whole id, looks a prefix up, and refuses what cannot be an id", () => {
    expect(searchTarget(" 0B9E3C1E-8A2F-4A57-9F7E-3B1D2C4E5F60 ")).toEqual({ kind: "open", id: "0b9e3c1e-8a2f-4a57-9f7e-3b1d2c4e5f60" });
    expect(searchTarget("0b9e3c1e")).toEqual({ kind: "lookup", prefix: "0b9e3c1e" });
    expect(searchTarget("0b9e3c1e-8a")).toEqual({ kind: "lookup", prefix: "0b9e3c1e-8a" });
    expect(searchTarget("0b9e3c1")).toMatchObject({ kind: "invalid", message: expect.stringContaining("at least 8") });
    expect(searchTarget("not-an-id!")).toMatchObject({ kind: "invalid" });
  });
});

// The dashboard is built by tsc alone for the browser and cannot load the
// shared domain module, so it keeps its own copy of the finished set: this
// keeps the copy equal to the domain's.
describe("the dashboard's run statuses", () => {
  it("call finished exactly the statuses the domain calls finished", () => {
    for (const status of RUN_STATUSES) expect(isFinished(status), status).toBe(FINISHED_RUN_STATUSES.has(status));
  });
});
