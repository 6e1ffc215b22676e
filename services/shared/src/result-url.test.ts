import { describe, expect, it } from "vitest";
import { resultUrlKey, signResultUrl, verifyResultUrl } from "./result-url.js";

const key = resultUrlKey("an-internal-token-of-enough-length");
const runId = "0b7e6e1c-4c84-4c36-9d3c-3b8f8f0f9a11";
const now = new Date("2030-01-01T00:00:00Z");
const later = new Date(now.getTime() + 3600_000);

describe("signed result URLs", () => {
  it("point at the run's result under the public URL and verify until they expire", () => {
    const url = new URL(signResultUrl("http://127.0.0.1:8080", runId, key, later));
    expect(url.pathname).toBe(`/v1/runs/${runId}/result`);
    expect(url.searchParams.get("expires")).toBe(String(later.getTime() / 1000));
    expect(verifyResultUrl(runId, url.searchParams, key, now)).toBeNull();
    expect(verifyResultUrl(runId, url.searchParams, key, later)).toBeNull();
    expect(verifyResultUrl(runId, url.searchParams, key, new Date(later.getTime() + 1000))).toBe("expired");
  });

  it("refuse a changed expiry, another run, another key, or missing parts", () => {
    const url = new URL(signResultUrl("https://lh.example/prefix/", runId, key, later));
    expect(url.pathname).toBe(`/prefix/v1/runs/${runId}/result`);
    const q = url.searchParams;
    const moved = new URLSearchParams(q);
    moved.set("expires", String(Number(q.get("expires")) + 86400));
    expect(verifyResultUrl(runId, moved, key, now)).toBe("bad_signature");
    expect(verifyResultUrl("11111111-1111-1111-1111-111111111111", q, key, now)).toBe("bad_signature");
    expect(verifyResultUrl(runId, q, resultUrlKey("another-token-of-enough-length"), now)).toBe("bad_signature");
    expect(verifyResultUrl(runId, { expires: q.get("expires") }, key, now)).toBe("missing");
    expect(verifyResultUrl(runId, { expires: "soon", signature: "x" }, key, now)).toBe("malformed");
  });

  it("derive their key from the internal token without using it directly", () => {
    expect(key).toHaveLength(32);
    expect(key.equals(Buffer.from("an-internal-token-of-enough-length"))).toBe(false);
  });
});
