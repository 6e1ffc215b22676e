// The egress guard of app URLs end to end (DESIGN.md "Projects, keys and
// limits"): PUT /v1/apps refuses every spelling of a cloud metadata,
// link-local, unspecified, multicast or broadcast address and of Longhaul's
// own services and dependencies with a 400, storing nothing; and the invoker
// checks again, resolved, at every call. The scheduler here allows loopback
// apps (as npm start does) while the invoker does not (the default), so a
// loopback app passes the first check and meets the second: its run fails,
// and the canary listening there is never reached.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let canary: Peer;
let api: ReturnType<typeof gateway>;

beforeAll(async () => {
  canary = await startPeer();
  mesh = await startTestMesh({
    serviceEnv: {
      scheduler: { LONGHAUL_APP_ALLOWED_NETWORKS: "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7,127.0.0.0/8,::1/128" },
      invoker: { LONGHAUL_APP_ALLOWED_NETWORKS: "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7" },
    },
  });
  api = gateway(mesh.ingressUrl, mesh.apiKey);
});

afterAll(async () => {
  await mesh?.cleanup();
  await canary?.close();
});

describe("app egress guard", () => {
  it("refuses hostile app URLs at PUT with a 400 naming why, and stores nothing", async () => {
    const schedulerMetrics = Number(new URL(mesh.metricsUrls.scheduler[0]!).port);
    const ingressPort = Number(new URL(mesh.ingressUrl!).port);
    const dbPort = Number(new URL(mesh.database.url).port || 5432);
    const hostile = [
      "http://169.254.169.254/latest/meta-data/",
      "http://169.254.169.254.:80/",
      "http://0xa9fea9fe/",
      "http://2852039166/",
      "http://0251.0376.0251.0376/",
      "http://[::ffff:169.254.169.254]/",
      "http://[fd00:ec2::254]/",
      "http://100.100.100.200/",
      "http://169.254.1.1/",
      "http://[fe80::1]/",
      "http://0.0.0.0:80/",
      "http://0/",
      "http://[::]/",
      "http://224.0.0.1/",
      "http://255.255.255.255/",
      `http://127.0.0.1:${schedulerMetrics}/metrics`,
      `http://localhost:${schedulerMetrics}/metrics`,
      `http://2130706433:${schedulerMetrics}/metrics`,
      `http://0x7f000001:${schedulerMetrics}/metrics`,
      `http://127.1:${schedulerMetrics}/metrics`,
      `http://017700000001:${schedulerMetrics}/metrics`,
      `http://[::ffff:127.0.0.1]:${schedulerMetrics}/metrics`,
      `http://127.0.0.1:${ingressPort}/metrics`,
      `http://127.0.0.1:${dbPort}/`,
    ];
    for (const url of hostile) {
      const r = await api.putApp("evil", { url });
      expect(r.status, `${url}: ${r.text}`).toBe(400);
      expect(r.json.error.message, url).toMatch(/metadata|linkLocal|unspecified|multicast|broadcast|Longhaul's own/);
    }
    expect((await api.call("GET", "/v1/apps")).json.apps).toEqual([]);
    expect((await api.call("GET", "/v1/apps/evil")).status).toBe(404);
  });

  it("checks again at call time: a run to a refused address fails and the app is never reached", async () => {
    // Loopback passes the scheduler here, not the invoker.
    expect((await api.putApp("canary", { url: `http://localhost:${canary.port}`, retry: { max_attempts: 1 } })).status).toBe(201);
    const r = await api.call("POST", "/dev/canary/x?async=true", "{}");
    expect(r.status).toBe(202);
    const run = (await api.finished(r.json.run_id)) as { status: string; error: { message: string } | null };
    expect(run.status).toBe("failed");
    expect(JSON.stringify(run), JSON.stringify(run)).toContain("app address refused");
    // A sync pass-through is refused the same way.
    const sync = await api.call("GET", "/dev/canary/y");
    expect(sync.status).toBeGreaterThanOrEqual(500);
    expect(canary.received).toHaveLength(0);
  });
});
