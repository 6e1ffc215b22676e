// Bulk recovery after an outage: POST /v1/runs/retry retries
// every finished run a filter matches, once; POST /v1/apps/{app}/pause and
// /resume hold and release an app's queue.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let api: ReturnType<typeof gateway>;
/** Whether the app answers 500 (an outage) or 200. */
let failing = true;
const calls = new Map<string, number>();

beforeAll(async () => {
  app = await startPeer();
  app.handle(async (req, res) => {
    const tag = new URL(req.url, "http://x").searchParams.get("tag") ?? "";
    calls.set(tag, (calls.get(tag) ?? 0) + 1);
    res.statusCode = failing ? 500 : 200;
    res.end(failing ? "down" : `ok ${tag}`);
  });
  mesh = await startTestMesh();
  api = gateway(mesh.ingressUrl, mesh.apiKey);
});

afterAll(async () => {
  await mesh?.cleanup();
  await app?.close();
});

async function submit(appName: string, tag: string): Promise<string> {
  const r = await api.call("POST", `/dev/${appName}/work?async=true&tag=${tag}`, "x");
  expect(r.status).toBe(202);
  return r.json.run_id as string;
}

describe("bulk retry", () => {
  it("retries every failed run a filter matches, each once, and a second call finds nothing left", async () => {
    await api.putApp("outage", { url: app.url, retry: { max_attempts: 1 } });
    await api.putApp("bystander", { url: app.url, retry: { max_attempts: 1 } });
    failing = true;
    const failed = [];
    for (let i = 0; i < 3; i++) failed.push(await submit("outage", `o${i}`));
    const other = await submit("bystander", "b0");
    for (const id of [...failed, other]) expect(await api.finished(id)).toMatchObject({ status: "failed", error_code: "app_error" });

    failing = false;
    const r = await api.call("POST", "/v1/runs/retry", { app: "outage", error_code: "app_error" });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ retried: 3, more: false });
    expect(r.json.run_ids).toHaveLength(3);
    for (const [i, id] of (r.json.run_ids as string[]).entries()) {
      const run = await api.finished(id);
      expect(run).toMatchObject({ status: "succeeded", app: "outage", retry_of: failed[i] });
    }
    // The bystander app's run was not part of the filter.
    expect(calls.get("b0")).toBe(1);
    // Never twice: the retried runs are skipped by a second call.
    const again = await api.call("POST", "/v1/runs/retry", { app: "outage", error_code: "app_error" });
    expect(again.json).toMatchObject({ retried: 0, run_ids: [], more: false });
    for (let i = 0; i < 3; i++) expect(calls.get(`o${i}`)).toBe(2);
  });

  it("takes at most `limit` runs per call and says more are left", async () => {
    await api.putApp("batched", { url: app.url, retry: { max_attempts: 1 } });
    failing = true;
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await submit("batched", `l${i}`));
    for (const id of ids) await api.finished(id);
    failing = false;
    const first = await api.call("POST", "/v1/runs/retry", { app: "batched", limit: 2 });
    expect(first.json).toMatchObject({ retried: 2, more: true });
    const second = await api.call("POST", "/v1/runs/retry", { app: "batched", limit: 2 });
    expect(second.json).toMatchObject({ retried: 1, more: false });
  });

  it("bad filters are a 400 naming the problem, and change nothing", async () => {
    const before = (await api.call("GET", "/v1/runs?limit=500")).json.runs.length;
    const cases: [unknown, RegExp][] = [
      [{}, /filter/],
      [{ status: "failed" }, /filter/],
      [{ app: "outage", status: "succeeded" }, /status/],
      [{ app: "outage", bogus: 1 }, /bogus/],
      [{ app: "outage", limit: 5000 }, /limit/],
      [{ app: "outage", created_after: "yesterday" }, /created_after/],
      [{ created_after: "2026-12-02T10:00:00Z", created_before: "2026-12-01T10:00:00Z" }, /created_after/],
    ];
    for (const [body, message] of cases) {
      const r = await api.call("POST", "/v1/runs/retry", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error.message).toMatch(message);
    }
    expect((await api.call("POST", "/v1/runs/retry", "not json", { "content-type": "application/json" })).status).toBe(400);
    expect((await api.call("GET", "/v1/runs?limit=500")).json.runs.length).toBe(before);
  });
});

describe("pause and resume", () => {
  it("a paused app accepts runs and holds them queued; resume runs them, in order", async () => {
    failing = false;
    await api.putApp("held", { url: app.url, max_concurrency: 2 });
    const paused = await api.call("POST", "/v1/apps/held/pause");
    expect(paused.status).toBe(200);
    expect(paused.json).toMatchObject({ name: "held", paused: true });
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await submit("held", `p${i}`));
    // Past several reconciler ticks: still queued, the app never called.
    await new Promise((r) => setTimeout(r, 2500));
    for (const id of ids) expect((await api.getRun(id)).json).toMatchObject({ status: "queued" });
    expect(calls.get("p0")).toBeUndefined();
    expect((await api.call("GET", "/v1/apps/held")).json).toMatchObject({ paused: true, queued: 4 });
    // A PUT of the app (as a GET body, edited) does not resume it.
    const current = (await api.call("GET", "/v1/apps/held")).json;
    expect((await api.putApp("held", { ...current, timeout_seconds: 120 })).json).toMatchObject({ paused: true });

    const resumed = await api.call("POST", "/v1/apps/held/resume");
    expect(resumed.json).toMatchObject({ paused: false });
    for (const id of ids) expect(await api.finished(id)).toMatchObject({ status: "succeeded", attempt: 1 });
  });

  it("an unknown app is a 404; a query parameter is a 400", async () => {
    expect((await api.call("POST", "/v1/apps/nope/pause")).status).toBe(404);
    expect((await api.call("POST", "/v1/apps/nope/resume")).status).toBe(404);
    expect((await api.call("POST", "/v1/apps/held/pause?now=1")).status).toBe(400);
    await eventually(async () => (await api.call("GET", "/v1/apps/held")).json.paused === false, 5000, "held not paused");
  });
});
