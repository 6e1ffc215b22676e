import { describe, expect, it } from "vitest";
import { runsPb } from "@longhaul/shared/proto";
import { statsRequestFromQuery, statsToJson } from "./stats-routes.js";

describe("GET /v1/stats parameters", () => {
  it("reads window, app and mode; the window defaults to 1h", () => {
    expect(statsRequestFromQuery(new URLSearchParams("window=7d&app=echo&mode=sync"))).toEqual({ window: "7d", app: "echo", mode: "sync" });
    expect(statsRequestFromQuery(new URLSearchParams(""))).toEqual({ window: "1h", app: "", mode: "" });
  });

  it.each([
    ["window=2h", /window must be one of 1h, 24h, 7d/],
    ["window=", /window must be one of/],
    ["mode=batch", /mode must be async or sync/],
    ["app=", /app must name an app/],
    ["windows=1h", /windows: unknown query parameter; GET \/v1\/stats takes window, app, mode/],
    ["window=1h&window=7d", /window: given more than once/],
  ])("refuses %s with a 400 naming the parameter", (q, message) => {
    expect(() => statsRequestFromQuery(new URLSearchParams(q))).toThrow(message);
  });

  it("answers in snake_case with null for a percentile no run had", () => {
    const json = statsToJson(
      runsPb.GetRunStatsResponse.fromPartial({
        window: "1h",
        bucketSeconds: 60,
        buckets: [
          { start: new Date("2026-05-01T09:00:00Z"), succeeded: 3, timedOut: 1, queueWaitP50Ms: 12.5, runP95Ms: 900, webhookDelivered: 2 },
        ],
        inFlight: 4,
        queued: 5,
      }),
    );
    expect(json).toEqual({
      window: "1h",
      bucket_seconds: 60,
      buckets: [
        {
          start: "2026-05-01T09:00:00.000Z",
          succeeded: 3,
          failed: 0,
          timed_out: 1,
          cancelled: 0,
          expired: 0,
          queue_wait_p50_ms: 12.5,
          queue_wait_p95_ms: null,
          run_p50_ms: null,
          run_p95_ms: 900,
          webhook_delivered: 2,
          webhook_failed: 0,
        },
      ],
      in_flight: 4,
      queued: 5,
    });
  });
});
