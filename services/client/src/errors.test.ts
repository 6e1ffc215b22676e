import { describe, expect, it } from "vitest";
import { LonghaulApiError, parseRetryAfter } from "./errors.js";

describe("LonghaulApiError.fromResponse", () => {
  it("carries the API's code, message, status, Retry-After and limit", async () => {
    const res = new Response(JSON.stringify({ error: { code: "resource_exhausted", message: "slow down", limit: "max_queued" } }), {
      status: 429,
      headers: { "content-type": "application/json", "retry-after": "7" },
    });
    const err = await LonghaulApiError.fromResponse(res);
    expect(err).toBeInstanceOf(LonghaulApiError);
    expect([err.code, err.message, err.status, err.retryAfterSeconds, err.limit]).toEqual(["resource_exhausted", "slow down", 429, 7, "max_queued"]);
  });

  it("names the status when the body is not Longhaul's", async () => {
    const err = await LonghaulApiError.fromResponse(new Response("<html>bad gateway</html>", { status: 502 }));
    expect([err.code, err.status, err.retryAfterSeconds]).toEqual(["http_502", 502, undefined]);
    expect(err.message).toContain("bad gateway");
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates", () => {
    expect(parseRetryAfter("12")).toBe(12);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThan(50);
  });
});
