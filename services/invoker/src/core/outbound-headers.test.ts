import { describe, expect, it } from "vitest";
import { passableHeaders, runCallHeaders } from "./outbound-headers.js";
import { parseRetryAfter } from "./retry-after.js";

describe("outbound headers", () => {
  const stored = [
    { name: "Content-Type", value: "text/plain" },
    { name: "Connection", value: "keep-alive, X-Hop" },
    { name: "X-Hop", value: "1" },
    { name: "Transfer-Encoding", value: "chunked" },
    { name: "Host", value: "gateway.example" },
    { name: "Content-Length", value: "5" },
    { name: "traceparent", value: "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01" },
    { name: "Idempotency-Key", value: "client-key" },
    { name: "X-Custom", value: "a" },
    { name: "X-Custom", value: "b" },
  ];

  it("drops hop-by-hop, host, length and trace headers and keeps repeated ones", () => {
    expect(passableHeaders(stored)).toEqual([
      { name: "Content-Type", value: "text/plain" },
      { name: "Idempotency-Key", value: "client-key" },
      { name: "X-Custom", value: "a" },
      { name: "X-Custom", value: "b" },
    ]);
    expect(passableHeaders(stored, true)).toContainEqual({ name: "Content-Length", value: "5" });
  });

  it("names the run on an async call, replacing a stored Idempotency-Key", () => {
    const h = runCallHeaders(stored, "run-1", 3);
    expect(h.filter((x) => x.name.toLowerCase() === "idempotency-key")).toEqual([
      { name: "Idempotency-Key", value: "run-1" },
    ]);
    expect(h).toContainEqual({ name: "X-Longhaul-Run-Id", value: "run-1" });
    expect(h).toContainEqual({ name: "X-Longhaul-Attempt", value: "3" });
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  it("reads seconds and HTTP dates", () => {
    expect(parseRetryAfter("120", now)).toBe(120);
    expect(parseRetryAfter(" 7 ", now)).toBe(7);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:01:30 GMT", now)).toBe(90);
    expect(parseRetryAfter("Wed, 31 Dec 2025 23:00:00 GMT", now)).toBe(0);
  });
  it("gives 0 when absent or unreadable", () => {
    expect(parseRetryAfter(undefined, now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBe(0);
    expect(parseRetryAfter("-5", now)).toBe(0);
  });
});
