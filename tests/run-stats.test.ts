// GET /v1/stats end to end through the real mesh: runs that succeed, fail,
// time out and are cancelled, webhooks delivered and failed, a sync call, a
// call in flight and one queued, counted in the right buckets of every
// window; bad parameters are a 400 naming them, an unknown app a 404.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let hooks: Peer;
let api: ReturnType<typeof gateway>;

interface Bucket {
  start: string;
  succeeded: number;
  failed: number;
  timed_out: number;
  cancelled: number;
  expired: number;
  queue_wait_p50_ms: number | null;
  queue_wait_p95_ms: number | null;
  run_p50_ms: number | null;
  run_p95_ms: number | null;
  webhook_delivered: number;
  webhook_failed: number;
}
interface Stats {
  window: string;
  bucket_seconds: number;
  buckets: Bucket[];
  in_flight: number;
  queued: number;
}

const OUTCOMES = ["succeeded", "failed", "timed_out", "cancelled", "expired", "webhook_delivered", "webhook_failed"] as const;
const totals = (s: Stats) => Object.fromEntries(OUTCOMES.map((k) => [k, s.buckets.reduce((n, b) => n + b[k], 0)]));

beforeAll(async () => {
  [mesh, app, hooks] = await Promise.all([
    // Two webhook attempts a second apart, so that a failing receiver makes a failed webhook quickly.
    startTestMesh({ env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true", NOTIFIER_RETRY_SCHEDULE: "0,1", SCHEDULER_TICK_MS: "200" } }),
    startPeer(),
    startPeer(),
  ]);
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  app.handle(async (req, res, raw) => {
    const u = new URL(req.url, "http://x");
    const ms = Number(u.searchParams.get("ms") ?? 0);
    if (ms) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        raw.socket.once("close", () => {
          clearTimeout(t);
          resolve();
        });
      });
      if (res.destroyed) return;
    }
    res.writeHead(u.pathname === "/fail" ? 500 : 200, { "content-type": "text/plain" });
    res.end("done");
  });
  hooks.handle((req, res) => {
    res.writeHead(req.url.startsWith("/bad") ? 500 : 200);
    res.end();
  });
  expect((await api.putApp("stats", { url: app.url, retry: { max_attempts: 1 } })).status).toBe(201);
  expect((await api.putApp("one", { url: app.url, max_concurrency: 1 })).status).toBe(201);
});

afterAll(async () => {
  await mesh?.cleanup();
  await app?.close();
  await hooks?.close();
});

async function submit(appName: string, path: string, headers: Record<string, string> = {}): Promise<string> {
  const r = await api.call("POST", `/dev/${appName}${path}${path.includes("?") ? "&" : "?"}async=true`, "{}", headers);
  expect(r.status, r.text).toBe(202);
  return r.json.run_id as string;
}

const stats = async (query: string): Promise<Stats> => {
  const r = await api.call("GET", `/v1/stats?${query}`);
  expect(r.status, r.text).toBe(200);
  return r.json as Stats;
};

describe("GET /v1/stats", () => {
  it("counts real runs by outcome, with waits, durations, webhooks and the calls in flight and queued now", async () => {
    const hook = encodeURIComponent(`${hooks.url}/ok`);
    const badHook = encodeURIComponent(`${hooks.url}/bad`);
    const ok = await Promise.all([1, 2, 3].map(() => submit("stats", `/work?ms=60&webhookEndpoint=${hook}`)));
    const failed = await submit("stats", `/fail?webhookEndpoint=${badHook}`);
    const late = await submit("stats", "/work?ms=10000", { "X-Longhaul-Timeout": "1" });
    const doomed = await submit("stats", "/work?ms=60000");
    await eventually(async () => (await api.getRun(doomed)).json?.status === "running", 20_000, "the held run to start");
    expect((await api.call("POST", `/v1/runs/${doomed}/cancel`)).status).toBe(200);
    expect((await api.call("GET", "/dev/stats/work")).status).toBe(200);
    for (const id of [...ok, failed, late]) await api.finished(id);
    // One app call at a time: one in flight, one waiting.
    const held = await submit("one", "/work?ms=60000");
    const waiting = await submit("one", "/work?ms=60000");
    await eventually(async () => (await api.getRun(held)).json?.status === "running", 20_000, "the one-at-a-time run to start");

    // Webhooks settle after their runs (the failing one after its second attempt).
    const all = await eventually(
      async () => {
        const s = await stats("window=1h");
        return totals(s).webhook_delivered === 3 && totals(s).webhook_failed === 1 ? s : undefined;
      },
      30_000,
      "the webhooks to settle",
    );
    expect(all).toMatchObject({ window: "1h", bucket_seconds: 60, in_flight: 1, queued: 1 });
    expect(all.buckets).toHaveLength(60);
    expect(Date.parse(all.buckets.at(-1)!.start)).toBe(Math.floor(Date.now() / 60_000) * 60_000);
    expect(totals(all)).toEqual({ succeeded: 4, failed: 1, timed_out: 1, cancelled: 1, expired: 0, webhook_delivered: 3, webhook_failed: 1 });
    // The runs that took 60 ms: some bucket has a run p50 of at least that, and every run that started waited a little.
    const busy = all.buckets.filter((b) => b.run_p50_ms !== null);
    expect(busy.length).toBeGreaterThan(0);
    expect(Math.max(...busy.map((b) => b.run_p95_ms!))).toBeGreaterThanOrEqual(60 * 0.9);
    expect(busy.every((b) => b.queue_wait_p50_ms !== null && b.queue_wait_p50_ms >= 0)).toBe(true);
    // Buckets with no run have no percentiles.
    expect(all.buckets.filter((b) => b.succeeded + b.failed + b.timed_out + b.cancelled === 0).every((b) => b.run_p50_ms === null)).toBe(true);

    // The same runs in the longer windows, cut into 15 min and 2 h buckets.
    const day = await stats("window=24h");
    const week = await stats("window=7d");
    expect([day.bucket_seconds, day.buckets.length, week.bucket_seconds, week.buckets.length]).toEqual([900, 96, 7200, 84]);
    expect(totals(day)).toEqual(totals(all));
    expect(totals(week)).toEqual(totals(all));

    // Filters: the sync call alone; one app's gauges.
    expect(totals(await stats("window=1h&mode=sync"))).toMatchObject({ succeeded: 1, failed: 0 });
    expect(totals(await stats("window=1h&mode=async"))).toMatchObject({ succeeded: 3, failed: 1, timed_out: 1, cancelled: 1 });
    const one = await stats("window=1h&app=one");
    expect(one).toMatchObject({ in_flight: 1, queued: 1 });
    expect(totals(one).succeeded).toBe(0);
    for (const id of [waiting, held]) await api.call("POST", `/v1/runs/${id}/cancel`);
  });

  it.each([
    ["window=2h", "window"],
    ["window=1h&stauts=failed", "stauts"],
    ["mode=batch", "mode"],
    ["app=Not_A_Name", "app"],
  ])("GET /v1/stats?%s is a 400 naming %s", async (query, param) => {
    const r = await api.call("GET", `/v1/stats?${query}`);
    expect(r.status, r.text).toBe(400);
    expect(r.json.error.message).toContain(param);
  });

  it("answers 404 for an app the project does not have, and empty buckets for an app without runs", async () => {
    const r = await api.call("GET", "/v1/stats?window=24h&app=nope");
    expect(r.status).toBe(404);
    expect(r.json.error.code).toBe("not_found");
    expect((await api.putApp("quiet", { url: app.url })).status).toBe(201);
    const quiet = await stats("window=7d&app=quiet");
    expect(totals(quiet)).toEqual({ succeeded: 0, failed: 0, timed_out: 0, cancelled: 0, expired: 0, webhook_delivered: 0, webhook_failed: 0 });
    expect(quiet).toMatchObject({ in_flight: 0, queued: 0 });
  });
});
