// The async path end to end: the four services as processes, a real app and a real
// webhook receiver on loopback, real Postgres and JetStream.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

const OTHER_KEY = "lh_other_project_key_0123456789";
let mesh: TestMesh;
let app: Peer;
let hook: Peer;
let api: ReturnType<typeof gateway>;
let other: ReturnType<typeof gateway>;

async function runCount(): Promise<number> {
  const c = new pg.Client({ connectionString: mesh.database.url });
  await c.connect();
  try {
    return (await c.query("select count(*)::int as n from runs")).rows[0].n as number;
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  app = await startPeer();
  hook = await startPeer();
  mesh = await startTestMesh({
    env: {
      LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true",
      LONGHAUL_API_KEYS: `other:${OTHER_KEY}`,
      LONGHAUL_MAX_BODY_BYTES: String(64 * 1024),
    },
  });
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  other = gateway(mesh.ingressUrl, OTHER_KEY);
  const put = await api.putApp("echo", { url: app.url });
  expect(put.status).toBe(201);
});

afterAll(async () => {
  await mesh?.cleanup();
  await app?.close();
  await hook?.close();
});

describe("the async path", () => {
  it("accepts at once, calls the app in the background, stores the answer and POSTs the webhook", async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    app.handle(async (req, res) => {
      if (req.url.startsWith("/predict")) await released;
      res.writeHead(200, { "content-type": "application/json", "x-app": "yes" });
      res.end(JSON.stringify({ echoed: req.body.toString(), query: req.url.split("?")[1] ?? "" }));
    });

    const submit = await api.call(
      "POST",
      `/dev/echo/predict?async=true&webhookEndpoint=${encodeURIComponent(`${hook.url}/hook`)}&keep=1&lang=fr`,
      '{"prompt":"hello"}',
      { "content-type": "application/json", "x-custom": "kept", connection: "keep-alive" },
    );
    expect(submit.status).toBe(202);
    expect(Object.keys(submit.json)).toEqual(["run_id"]);
    const runId: string = submit.json.run_id;
    expect(runId).toMatch(/^[0-9a-f-]{36}$/);
    expect(submit.headers.get("location")).toBe(`/v1/runs/${runId}`);

    // The app gets the ordinary synchronous call, minus Longhaul's own parts.
    const [call] = await app.waitFor(1, "/predict");
    expect(call!.method).toBe("POST");
    expect(call!.url).toBe("/predict?keep=1&lang=fr");
    expect(call!.body.toString()).toBe('{"prompt":"hello"}');
    expect(call!.headers["content-type"]).toBe("application/json");
    expect(call!.headers["x-custom"]).toBe("kept");
    expect(call!.headers.authorization).toBeUndefined();
    expect(call!.headers["idempotency-key"]).toBe(runId);
    expect(call!.headers["x-longhaul-attempt"]).toBe("1");

    const running = await eventually(async () => {
      const r = await api.getRun(runId);
      return r.json?.status === "running" ? r.json : undefined;
    }, 10_000, "running");
    expect(running.started_at).toBeTruthy();

    release();
    const done = await api.finished(runId);
    expect(done).toMatchObject({ run_id: runId, status: "succeeded", status_code: 200, app: "echo" });
    expect(new Date(done.finished_at).getTime()).toBeGreaterThanOrEqual(new Date(done.created_at).getTime());

    const result = await api.call("GET", `/v1/runs/${runId}/result`);
    expect(result.status).toBe(200);
    expect(result.headers.get("content-type")).toContain("application/json");
    expect(JSON.parse(result.text)).toEqual({ echoed: '{"prompt":"hello"}', query: "keep=1&lang=fr" });

    const [delivery] = await hook.waitFor(1, "/hook");
    expect(delivery!.method).toBe("POST");
    expect(JSON.parse(delivery!.body.toString())).toEqual({ echoed: '{"prompt":"hello"}', query: "keep=1&lang=fr" });
    expect(delivery!.headers["content-type"]).toContain("application/json");
    expect(delivery!.headers["x-longhaul-run-id"]).toBe(runId);
    expect(delivery!.headers["x-longhaul-run-status"]).toBe("succeeded");
    expect(delivery!.headers["x-longhaul-status-code"]).toBe("200");
    expect(delivery!.headers["webhook-signature"]).toMatch(/^v1,/);

    await eventually(async () => (await api.getRun(runId)).json?.webhook_state === "delivered", 10_000, "webhook delivered");
  });

  it("records a failed run when the app answers non-2xx, and when it cannot be reached", async () => {
    app.handle((_req, res) => {
      res.writeHead(400, { "content-type": "text/plain" });
      res.end("bad prompt");
    });
    const r1 = await api.call("POST", "/dev/echo/predict?async=true", "x");
    expect(r1.status).toBe(202);
    const failed = await api.finished(r1.json.run_id);
    expect(failed).toMatchObject({ status: "failed", status_code: 400, error_code: "app_error" });
    const res = await api.call("GET", `/v1/runs/${r1.json.run_id}/result`);
    expect(res.text).toBe("bad prompt");

    // A port nothing listens on: connection refused, retried by policy, then failed.
    const closed = await startPeer();
    const deadUrl = closed.url;
    await closed.close();
    expect((await api.putApp("dead", { url: deadUrl, retry: { max_attempts: 2, initial_backoff_seconds: 0.2 } })).status).toBe(201);
    const r2 = await api.call("POST", "/dev/dead/x?async=true", "x");
    const lost = await api.finished(r2.json.run_id);
    expect(lost).toMatchObject({ status: "failed", error_code: "connect_error", attempt: 2 });
  });

  it("passes a call without async=true through synchronously", async () => {
    app.handle((req, res) => {
      res.writeHead(201, { "content-type": "text/plain", "x-app": "sync" });
      res.write("part one,");
      setTimeout(() => res.end(` part two for ${req.method} ${req.url}`), 50);
    });
    const res = await api.call("PUT", "/dev/echo/items/7?x=1", "payload", { "content-type": "text/plain" });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-app")).toBe("sync");
    expect(res.text).toBe("part one, part two for PUT /items/7?x=1");
    const call = app.received.at(-1)!;
    expect(call.body.toString()).toBe("payload");
  });

  it("returns the same run for a repeated Idempotency-Key", async () => {
    app.handle((_req, res) => res.end("ok"));
    const a = await api.call("POST", "/dev/echo/p?async=true", "same", { "idempotency-key": "k-1" });
    const b = await api.call("POST", "/dev/echo/p?async=true", "same", { "idempotency-key": "k-1" });
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.json.run_id).toBe(a.json.run_id);
    const c = await api.call("POST", "/dev/echo/p?async=true", "different", { "idempotency-key": "k-1" });
    expect(c.status).toBe(422);
  });
});

describe("auth and projects", () => {
  it("answers 401 without a key or with a wrong one", async () => {
    const none = await fetch(`${mesh.ingressUrl}/v1/apps`);
    expect(none.status).toBe(401);
    expect((await none.json()).error.code).toBe("unauthenticated");
    expect((await gateway(mesh.ingressUrl, "wrong-key").call("GET", "/v1/apps")).status).toBe(401);
    expect((await gateway(mesh.ingressUrl, "wrong-key").call("POST", "/dev/echo/x?async=true", "x")).status).toBe(401);
  });

  it("hides one project's runs and apps from another (404, not 403)", async () => {
    app.handle((_req, res) => res.end("ok"));
    const r = await api.call("POST", "/dev/echo/p?async=true", "x");
    expect((await other.getRun(r.json.run_id)).status).toBe(404);
    expect((await other.call("GET", `/v1/runs/${r.json.run_id}/result`)).status).toBe(404);
    expect((await other.call("POST", `/v1/runs/${r.json.run_id}/cancel`)).status).toBe(404);
    expect((await other.call("GET", "/v1/apps/echo")).status).toBe(404);
    expect((await other.call("POST", "/dev/echo/p?async=true", "x")).status).toBe(404);
    const list = await other.call("GET", "/v1/runs");
    expect(list.status).toBe(200);
    expect(list.json.runs).toEqual([]);
  });
});

describe("bad input changes nothing", () => {
  it.each([
    ["unknown app", 404, "/dev/nope/x?async=true", "x", {}],
    ["another project's path", 404, "/other/echo/x?async=true", "x", {}],
    ["relative webhookEndpoint", 400, "/dev/echo/x?async=true&webhookEndpoint=/hook", "x", {}],
    ["ftp webhookEndpoint", 400, "/dev/echo/x?async=true&webhookEndpoint=ftp://example.com/x", "x", {}],
    ["body over the limit", 413, "/dev/echo/x?async=true", "y".repeat(65 * 1024), {}],
    ["negative timeout", 400, "/dev/echo/x?async=true", "x", { "x-longhaul-timeout": "-1" }],
    ["priority out of range", 400, "/dev/echo/x?async=true", "x", { "x-longhaul-priority": "1000" }],
  ] as const)("%s → %i, no run stored", async (_name, status, path, body, headers) => {
    const method = "POST";
    const before = await runCount();
    const res = await api.call(method, path, body, headers as Record<string, string>);
    expect(res.status).toBe(status);
    expect(res.json.error.code).toBeTruthy();
    expect(res.json.error.message).toBeTruthy();
    expect(await runCount()).toBe(before);
  });

  it("answers 400 with a JSON error for malformed JSON on /v1", async () => {
    const res = await api.call("PUT", "/v1/apps/broken", "{not json", { "content-type": "application/json" });
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe("invalid_argument");
    expect((await api.call("GET", "/v1/apps/broken")).status).toBe(404);
  });

  it("answers 503 and stores nothing while the scheduler is down", async () => {
    const before = await runCount();
    await mesh.kill("scheduler", 0, "SIGKILL");
    try {
      const res = await api.call("POST", "/dev/echo/x?async=true", "x");
      expect(res.status).toBe(503);
      expect(res.json.error.code).toBe("unavailable");
    } finally {
      await mesh.start("scheduler", 0);
    }
    expect(await runCount()).toBe(before);
    // And the mesh works again once it is back.
    app.handle((_req, res) => res.end("back"));
    const r = await eventually(async () => {
      const s = await api.call("POST", "/dev/echo/x?async=true", "x");
      return s.status === 202 ? s : undefined;
    }, 15_000, "submit after restart");
    expect((await api.finished(r.json.run_id)).status).toBe("succeeded");
  });
});

describe("the app URL", () => {
  it("is joined the same way for sync and async calls: the app URL's own query first, then the caller's", async () => {
    const seen: string[] = [];
    const target = await startPeer();
    target.handle(async (req, res) => {
      seen.push(req.url);
      res.setHeader("content-type", "text/plain");
      res.end("ok");
    });
    try {
      expect((await api.putApp("based", { url: `${target.url}/base?key=x` })).status).toBe(201);
      const sync = await api.call("GET", "/dev/based/p?y=1");
      expect(sync.status).toBe(200);
      const submitted = await api.call("POST", "/dev/based/p?async=true&y=1", "x");
      expect(submitted.status).toBe(202);
      expect((await api.finished(submitted.json.run_id)).status).toBe("succeeded");
      expect(seen).toEqual(["/base/p?key=x&y=1", "/base/p?key=x&y=1"]);
    } finally {
      await target.close();
    }
  });
});
