import { describe, expect, it } from "vitest";
import { MAX_RETRY_AFTER_MS, classify, nextDelayMs, parseRetryAfter, withJitter } from "./retry-policy.js";
import type { SendResult } from "./ports.js";

const response = (statusCode: number): SendResult => ({ kind: "response", statusCode, retryAfter: null, excerpt: "" });
const schedule = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];

describe("classify", () => {
  it.each([
    [200, "delivered"],
    [201, "delivered"],
    [204, "delivered"],
    [299, "delivered"],
    [301, "stop"],
    [302, "stop"],
    [307, "stop"],
    [400, "stop"],
    [401, "stop"],
    [404, "stop"],
    [410, "stop"],
    [413, "stop"],
    [408, "retry"],
    [429, "retry"],
    [500, "retry"],
    [502, "retry"],
    [503, "retry"],
    [504, "retry"],
  ] as const)("HTTP %i → %s", (status, verdict) => {
    expect(classify(response(status)).verdict).toBe(verdict);
  });

  it("retries network errors and timeouts, stops on a refused target", () => {
    expect(classify({ kind: "network", message: "ECONNRESET" }).verdict).toBe("retry");
    expect(classify({ kind: "timeout", message: "15 s" }).verdict).toBe("retry");
    expect(classify({ kind: "refused", message: "private address" }).verdict).toBe("stop");
  });

  it("names why a delivery failed", () => {
    expect(classify(response(302)).reason).toMatch(/redirects are not followed/);
    expect(classify(response(410)).reason).toMatch(/gone/);
    expect(classify(response(200)).reason).toBeNull();
  });
});

describe("nextDelayMs", () => {
  const mid = () => 0.5; // no jitter

  it("follows the schedule, one entry per attempt, then gives up", () => {
    expect(nextDelayMs(schedule, 1, mid)).toBe(5_000);
    expect(nextDelayMs(schedule, 2, mid)).toBe(300_000);
    expect(nextDelayMs(schedule, 7, mid)).toBe(36_000_000);
    expect(nextDelayMs(schedule, 8, mid)).toBeNull();
  });

  it("spans about 27.6 hours over 8 attempts by default", () => {
    // 0 + 5 s + 5 min + 30 min + 2 h + 5 h + 10 h + 10 h, before jitter.
    const total = schedule.reduce((a, b) => a + b, 0);
    expect(total).toBe(99_305);
    expect(schedule).toHaveLength(8);
  });

  it("adds at most ±10 % jitter", () => {
    expect(nextDelayMs(schedule, 2, () => 0)).toBe(270_000);
    expect(nextDelayMs(schedule, 2, () => 0.999999)).toBeCloseTo(330_000, -1);
    const seen = new Set(Array.from({ length: 50 }, () => nextDelayMs(schedule, 3, Math.random)));
    for (const d of seen) {
      expect(d).toBeGreaterThanOrEqual(1800_000 * 0.9);
      expect(d).toBeLessThanOrEqual(1800_000 * 1.1);
    }
    expect(seen.size).toBeGreaterThan(10);
    expect(withJitter(0, Math.random)).toBe(0);
  });

  it("honours a later Retry-After, ignores an earlier one, and caps it", () => {
    expect(nextDelayMs(schedule, 1, mid, 60_000)).toBe(60_000);
    expect(nextDelayMs(schedule, 2, mid, 60_000)).toBe(300_000);
    expect(nextDelayMs(schedule, 1, mid, 10 * 24 * 3600_000)).toBe(MAX_RETRY_AFTER_MS);
    // No attempt left: Retry-After does not add one.
    expect(nextDelayMs(schedule, 8, mid, 1_000)).toBeNull();
  });
});

describe("parseRetryAfter", () => {
  const now = new Date("2025-01-01T00:00:00Z");
  it("reads seconds and HTTP dates", () => {
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("Wed, 01 Jan 2025 00:10:00 GMT", now)).toBe(600_000);
    expect(parseRetryAfter("Tue, 31 Dec 2024 00:00:00 GMT", now)).toBe(0);
  });
  it("ignores what it cannot read", () => {
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter("", now)).toBeNull();
    expect(parseRetryAfter("soon", now)).toBeNull();
    expect(parseRetryAfter("-5", now)).toBeNull();
  });
});
