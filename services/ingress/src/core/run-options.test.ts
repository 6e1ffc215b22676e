import { describe, expect, it } from "vitest";
import { buildInvokeHead, buildSubmitRunRequest, parseRunOptions, type GatewayCall } from "./run-options.js";

const now = new Date("2026-01-01T00:00:00Z");
const call = (rawQuery: string, headers: Record<string, string> = {}, method = "POST"): GatewayCall => ({
  method,
  path: "/work/1",
  rawQuery,
  headers: Object.entries(headers).map(([name, value]) => ({ name, value })),
});

describe("parseRunOptions", () => {
  it("reads async from the query or Prefer", () => {
    expect(parseRunOptions(call("async=true"), now).async).toBe(true);
    expect(parseRunOptions(call("async"), now).async).toBe(true);
    expect(parseRunOptions(call("async=false"), now).async).toBe(false);
    expect(parseRunOptions(call("", { Prefer: "respond-async" }), now).async).toBe(true);
    expect(parseRunOptions(call(""), now).async).toBe(false);
    expect(() => parseRunOptions(call("async=maybe"), now)).toThrow(/async/);
  });

  it("reads labels from every X-Longhaul-Labels header", () => {
    const c: GatewayCall = {
      ...call("async=true"),
      headers: [
        { name: "X-Longhaul-Labels", value: "team=ml, job=42" },
        { name: "x-longhaul-labels", value: "env=prod" },
      ],
    };
    expect(parseRunOptions(c, now).labels).toEqual({ team: "ml", job: "42", env: "prod" });
    expect(parseRunOptions(call("async=true"), now).labels).toEqual({});
  });

  it("reads timeout and priority from headers first, else the query", () => {
    const o = parseRunOptions(call("timeout=99&priority=1", { "X-Longhaul-Timeout": "30" }), now);
    expect(o.timeoutSeconds).toBe(30);
    expect(o.priority).toBe(1);
    expect(parseRunOptions(call("", { "x-longhaul-priority": "-100" }), now).priority).toBe(-100);
  });

  it("refuses bad values with a 400 naming them", () => {
    for (const [q, hdr, msg] of [
      ["timeout=abc", {}, /timeout/],
      ["timeout=0", {}, /timeout/],
      ["", { "X-Longhaul-Timeout": "43201" }, /X-Longhaul-Timeout/],
      ["priority=101", {}, /priority/],
      ["", { "X-Longhaul-Not-Before": "tomorrow" }, /RFC 3339/],
      ["", { "X-Longhaul-Not-Before": "2026-01-02T00:00:00" }, /RFC 3339/],
      ["", { "X-Longhaul-Delay": "-1" }, /Delay/],
      ["", { "X-Longhaul-Delay": "5", "X-Longhaul-Not-Before": "2026-01-02T00:00:00Z" }, /exclude/],
      ["", { "Idempotency-Key": "k".repeat(256) }, /Idempotency-Key/],
      ["", { "X-Longhaul-Labels": "team" }, /X-Longhaul-Labels: "team" is not key=value/],
      ["", { "X-Longhaul-Labels": "a=1,a=2" }, /X-Longhaul-Labels: label a is given twice/],
      ["queueTtl=0", {}, /queueTtl query parameter must be between 1 and 2592000/],
      ["queueTtl=-5", {}, /queueTtl/],
      ["queueTtl=soon", {}, /queueTtl query parameter must be an integer/],
      ["queueTtl=1.5", {}, /queueTtl/],
      ["", { "X-Longhaul-Queue-Ttl": "2592001" }, /X-Longhaul-Queue-Ttl must be between 1 and 2592000/],
      ["", { "X-Longhaul-Queue-Ttl": "60", "X-Longhaul-Delay": "60" }, /X-Longhaul-Queue-Ttl ends before the run may start/],
    ] as const) {
      const err = (() => {
        try {
          parseRunOptions(call(q, hdr), now);
        } catch (e) {
          return e as { code: string; message: string };
        }
        return undefined;
      })();
      expect(err?.code).toBe("invalid_argument");
      expect(err?.message).toMatch(msg);
    }
  });

  it("turns Not-Before and Delay into a start time", () => {
    expect(parseRunOptions(call("", { "X-Longhaul-Delay": "90" }), now).notBefore).toEqual(
      new Date("2026-01-01T00:01:30Z"),
    );
    expect(parseRunOptions(call("", { "X-Longhaul-Not-Before": "2026-01-02T01:00:00+01:00" }), now).notBefore).toEqual(
      new Date("2026-01-02T00:00:00Z"),
    );
    expect(parseRunOptions(call("", { "X-Longhaul-Delay": "0" }), now).notBefore).toBeUndefined();
  });

  it("reads the queue ttl from X-Longhaul-Queue-Ttl first, else queueTtl", () => {
    expect(parseRunOptions(call("queueTtl=30"), now).queueTtlSeconds).toBe(30);
    expect(parseRunOptions(call("queueTtl=30", { "X-Longhaul-Queue-Ttl": "45" }), now).queueTtlSeconds).toBe(45);
    expect(parseRunOptions(call(""), now).queueTtlSeconds).toBe(0);
    expect(parseRunOptions(call("", { "X-Longhaul-Queue-Ttl": "61", "X-Longhaul-Delay": "60" }), now).queueTtlSeconds).toBe(61);
  });

  it("reads webhookEndpoint and Idempotency-Key", () => {
    const o = parseRunOptions(call("webhookEndpoint=https%3A%2F%2Fhooks.example%2Fx", { "Idempotency-Key": " k1 " }), now);
    expect(o.webhookUrl).toBe("https://hooks.example/x");
    expect(o.idempotencyKey).toBe("k1");
  });
});

describe("buildSubmitRunRequest", () => {
  it("keeps method, path, query and body as sent, minus Longhaul's parts", () => {
    const c = call("async=true&x=1&webhookEndpoint=https%3A%2F%2Fh%2Fw&y=%20", {
      "Content-Type": "application/octet-stream",
      Authorization: "Bearer k",
      "Idempotency-Key": "id-1",
      "X-Longhaul-Priority": "7",
      "X-Longhaul-Queue-Ttl": "120",
    });
    const body = Buffer.from([0, 1, 2, 255]);
    const req = buildSubmitRunRequest("echo", c, body, parseRunOptions(c, now));
    expect(req).toEqual({
      app: "echo",
      request: {
        method: "POST",
        path: "/work/1",
        query: "x=1&y=%20",
        headers: [{ name: "Content-Type", value: "application/octet-stream" }],
        body,
      },
      webhookUrl: "https://h/w",
      timeoutSeconds: 0,
      priority: 7,
      idempotencyKey: "id-1",
      notBefore: undefined,
      queueTtlSeconds: 120,
      labels: {},
      runId: "",
    });
  });
});

describe("buildInvokeHead", () => {
  const app = { name: "echo", url: "http://app:9000/base", timeoutSeconds: 60 };

  it("joins the URL and caps the timeout at the app's", () => {
    const c = call("q=1", { "X-Longhaul-Timeout": "600", "Idempotency-Key": "k" }, "PUT");
    const head = buildInvokeHead("dev", app, c, parseRunOptions(c, now));
    expect(head).toEqual({
      url: "http://app:9000/base/work/1?q=1",
      method: "PUT",
      headers: [{ name: "Idempotency-Key", value: "k" }],
      timeoutSeconds: 60,
      project: "dev",
      app: "echo",
    });
  });

  it("refuses async-only options on a sync call", () => {
    const c = call("webhookEndpoint=https%3A%2F%2Fh");
    expect(() => buildInvokeHead("dev", app, c, parseRunOptions(c, now))).toThrow(/async/);
    const labelled = call("", { "X-Longhaul-Labels": "team=ml" });
    expect(() => buildInvokeHead("dev", app, labelled, parseRunOptions(labelled, now))).toThrow(/X-Longhaul-Labels needs an async call/);
    const ttl = call("queueTtl=30");
    expect(() => buildInvokeHead("dev", app, ttl, parseRunOptions(ttl, now))).toThrow(/Queue-Ttl \(queueTtl\) needs an async call/);
  });
});
