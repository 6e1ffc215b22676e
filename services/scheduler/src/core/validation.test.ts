import { describe, expect, it } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import { checkSubmit, idPrefixRange, normaliseApp, type SubmitInput } from "./validation.js";
import { decodeCursor, encodeCursor } from "./run-registry.js";

const base = { name: "echo", url: "http://127.0.0.1:9000/", timeoutSeconds: 0, maxConcurrency: 0, queueTtlSeconds: 0 };
const submit: SubmitInput = {
  app: "echo",
  method: "POST",
  path: "/predict",
  query: "",
  headers: [],
  body: Buffer.from("{}"),
  webhookUrl: "",
  timeoutSeconds: 0,
  priority: 0,
  idempotencyKey: "",
  notBefore: undefined,
  queueTtlSeconds: 0,
  labels: {},
};
const limits = { maxRequestBytes: 1024, allowPrivateWebhooks: false, now: new Date() };

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof LonghaulError ? `${err.code}: ${err.message}` : String(err);
  }
  return "ok";
}

describe("normaliseApp", () => {
  it("fills defaults: 12 h timeout, unlimited concurrency, 3 attempts", () => {
    expect(normaliseApp(base)).toMatchObject({
      url: "http://127.0.0.1:9000",
      timeoutSeconds: 43_200,
      maxConcurrency: 0,
      maxAttempts: 3,
      initialBackoffSeconds: 1,
      idempotent: false,
    });
  });

  it.each([
    [{ name: "Bad Name" }, "name"],
    [{ url: "ftp://x" }, "url"],
    [{ url: "not a url" }, "url"],
    [{ timeoutSeconds: 43_201 }, "timeout_seconds"],
    [{ timeoutSeconds: -1 }, "timeout_seconds"],
    [{ maxConcurrency: -2 }, "max_concurrency"],
    [{ retry: { maxAttempts: 21, initialBackoffSeconds: 1, maxBackoffSeconds: 2, idempotent: false } }, "retry.max_attempts"],
  ])("rejects %o naming %s", (patch, field) => {
    expect(codeOf(() => normaliseApp({ ...base, ...patch }))).toMatch(new RegExp(`^invalid_argument: ${field.replace(".", "\\.")}`));
  });
});

describe("checkSubmit", () => {
  const app = normaliseApp({ ...base, timeoutSeconds: 600 });

  it("takes the app's timeout by default", () => {
    expect(checkSubmit(submit, app, limits)).toEqual({ timeoutSeconds: 600, expiresAt: null });
    expect(checkSubmit({ ...submit, timeoutSeconds: 30 }, app, limits)).toEqual({ timeoutSeconds: 30, expiresAt: null });
  });

  it("makes a queue ttl the run's deadline from now", () => {
    expect(checkSubmit({ ...submit, queueTtlSeconds: 90 }, app, limits).expiresAt).toEqual(new Date(limits.now.getTime() + 90_000));
  });

  it.each([
    [{ timeoutSeconds: 601 }, "invalid_argument: timeout_seconds"],
    [{ timeoutSeconds: -5 }, "invalid_argument: timeout_seconds"],
    [{ priority: 101 }, "invalid_argument: priority"],
    [{ queueTtlSeconds: -1 }, "invalid_argument: queue_ttl_seconds"],
    [{ queueTtlSeconds: 2_592_001 }, "invalid_argument: queue_ttl_seconds"],
    [{ priority: -101 }, "invalid_argument: priority"],
    [{ method: "get" }, "invalid_argument: request.method"],
    [{ path: "predict" }, "invalid_argument: request.path"],
    [{ webhookUrl: "not-a-url" }, "invalid_argument: webhookEndpoint"],
    [{ webhookUrl: "http://10.0.0.1/hook" }, "invalid_argument: webhookEndpoint"],
    [{ webhookUrl: "http://user:pw@example.com/hook" }, "invalid_argument: webhookEndpoint"],
    [{ body: Buffer.alloc(1025) }, "payload_too_large"],
    [{ notBefore: new Date(Date.now() + 40 * 86_400_000) }, "invalid_argument: not_before"],
    [{ labels: { "no spaces": "x" } }, "invalid_argument: labels"],
    [{ labels: Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, "v"])) }, "invalid_argument: labels: at most 10"],
  ])("rejects %o", (patch, expected) => {
    expect(codeOf(() => checkSubmit({ ...submit, ...patch }, app, limits))).toMatch(new RegExp(`^${expected}`));
  });

  it("accepts a private webhook when the operator allows it", () => {
    expect(codeOf(() => checkSubmit({ ...submit, webhookUrl: "http://127.0.0.1:9100/hook" }, app, { ...limits, allowPrivateWebhooks: true }))).toBe(
      "ok",
    );
  });
});

describe("idPrefixRange", () => {
  it("turns 8 to 32 hex digits, dashes and case aside, into a range of ids", () => {
    expect(idPrefixRange("0B1C7A4E")).toEqual({
      first: "0b1c7a4e-0000-0000-0000-000000000000",
      last: "0b1c7a4e-ffff-ffff-ffff-ffffffffffff",
    });
    expect(idPrefixRange("0b1c7a4e-8f5")).toEqual({
      first: "0b1c7a4e-8f50-0000-0000-000000000000",
      last: "0b1c7a4e-8f5f-ffff-ffff-ffffffffffff",
    });
    const id = "0b1c7a4e-8f55-4c9e-9d4f-6c1d2e3f4a5b";
    expect(idPrefixRange(id)).toEqual({ first: id, last: id });
  });

  it.each(["0b1c7a4", "0b1c7a4g", "", "0b1c7a4e-8f55-4c9e-9d4f-6c1d2e3f4a5b0"])("refuses %j naming id_prefix", (raw) => {
    expect(codeOf(() => idPrefixRange(raw))).toMatch(/^invalid_argument: id_prefix/);
  });
});

describe("cursors", () => {
  it("round-trip, and a forged one is a 400", () => {
    const run = { created_at: new Date("2026-01-02T03:04:05.678Z"), id: "0b1c7a4e-8f55-4c9e-9d4f-6c1d2e3f4a5b" };
    expect(decodeCursor(encodeCursor(run))).toEqual({ createdAt: run.created_at, id: run.id });
    expect(codeOf(() => decodeCursor("garbage"))).toMatch(/^invalid_argument: cursor/);
  });
});
