// Project limits end to end, on a mesh with two schedulers and two gateways
// so that a limit must hold across copies (its state lives in Postgres):
// submits per second with a burst and runs queued answer 429 with
// Retry-After and the RateLimit-Policy / RateLimit fields; a project at its
// max_in_flight keeps its runs queued while another project's run starts at
// once; watch streams past max_watch_streams are refused. Every refusal
// counts in the project's usage.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let operator: ReturnType<typeof gateway>;
let gateways: string[];
const holds = new Map<string, () => void>();

beforeAll(async () => {
  [mesh, app] = await Promise.all([startTestMesh({ services: { scheduler: 2, ingress: 2 } }), startPeer()]);
  gateways = mesh.processes.filter((p) => p.name === "ingress").map((p) => `http://127.0.0.1:${p.ports.LONGHAUL_HTTP_PORT}`);
  expect(gateways).toHaveLength(2);
  operator = gateway(mesh.ingressUrl, mesh.adminKey);
  // `/hold/<tag>` answers once the test releases <tag>.
  app.handle(async (req, res) => {
    const tag = /^\/hold\/([^/?]+)/.exec(req.url)?.[1];
    if (tag) await new Promise<void>((r) => holds.set(tag, r));
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  });
});

afterAll(async () => {
  for (const r of holds.values()) r();
  await mesh?.cleanup();
  await app?.close();
});

/** A project with limits, a key on each gateway, and an app `work` (max_concurrency 0 unless given). */
async function project(name: string, limits: Record<string, number>, appSettings: Record<string, unknown> = {}) {
  expect((await operator.call("POST", "/v1/admin/projects", { name })).status).toBe(201);
  if (Object.keys(limits).length) expect((await operator.call("PATCH", `/v1/admin/projects/${name}`, { limits })).status).toBe(200);
  const key = (await operator.call("POST", `/v1/admin/projects/${name}/keys`, { name: "k", scopes: ["read", "invoke", "admin"] })).json.key as string;
  const apis = gateways.map((g) => gateway(g, key));
  expect((await apis[0]!.putApp("work", { url: app.url, ...appSettings })).status).toBe(201);
  let turn = 0;
  return {
    key,
    apis,
    /** The next gateway, round-robin: consecutive calls go to different copies. */
    next: () => apis[turn++ % apis.length]!,
  };
}

const submit = (api: ReturnType<typeof gateway>, name: string, path = "/x") => api.call("POST", `/${name}/work${path}?async=true`, "{}");

describe("project limits", () => {
  it("refuses submits over the rate and burst with 429, Retry-After and RateLimit fields, across copies; another project is unaffected", async () => {
    // 3 at once, then one per 100 s: the test never waits for a refill.
    const flood = await project("flood", { submits_per_second: 0.01, burst: 3 });
    const calm = await project("calm", {});
    for (let i = 0; i < 3; i++) expect((await submit(flood.next(), "flood")).status).toBe(202);
    for (let i = 0; i < 2; i++) {
      const r = await submit(flood.next(), "flood");
      expect(r.status, r.text).toBe(429);
      expect(r.json.error).toMatchObject({ code: "resource_exhausted", limit: "submits_per_second" });
      expect(r.json.error.message).toContain("submits per second");
      expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(r.headers.get("ratelimit-policy")).toBe('"submits_per_second";q=3;w=300');
      expect(r.headers.get("ratelimit")).toMatch(/^"submits_per_second";r=0;t=\d+$/);
    }
    // A retry is a submit too.
    const runs = (await flood.apis[0]!.call("GET", "/v1/runs")).json.runs as { run_id: string }[];
    expect(runs).toHaveLength(3);
    expect((await flood.apis[1]!.call("POST", `/v1/runs/${runs[0]!.run_id}/retry`)).status).toBe(429);

    for (let i = 0; i < 10; i++) expect((await submit(calm.next(), "calm")).status).toBe(202);

    const usage = (await operator.call("GET", "/v1/admin/projects/flood")).json.usage;
    expect(usage).toMatchObject({ runs_today: 3, throttled_today: 3 });
    expect((await operator.call("GET", "/v1/admin/projects/calm")).json.usage.throttled_today).toBe(0);

    // Raising the limit takes effect for the next submit.
    expect((await operator.call("PATCH", "/v1/admin/projects/flood", { limits: { submits_per_second: 0 } })).status).toBe(200);
    expect((await submit(flood.next(), "flood")).status).toBe(202);
  });

  it("refuses a submit once max_queued runs wait", async () => {
    const q = await project("queue-cap", { max_queued: 2 }, { max_concurrency: 1 });
    expect((await submit(q.next(), "queue-cap", "/hold/qc")).status).toBe(202);
    await app.waitFor(1, "/hold/qc");
    expect((await submit(q.next(), "queue-cap")).status).toBe(202);
    expect((await submit(q.next(), "queue-cap")).status).toBe(202);
    const r = await submit(q.next(), "queue-cap");
    expect(r.status, r.text).toBe(429);
    expect(r.json.error.limit).toBe("max_queued");
    expect(r.headers.get("ratelimit-policy")).toBe('"max_queued";q=2');
    expect(r.headers.get("retry-after")).toBeTruthy();
    holds.get("qc")!();
    await eventually(async () => (await q.apis[0]!.call("GET", "/v1/runs?status=succeeded")).json.runs.length === 3);
  });

  it("keeps runs past max_in_flight queued, never refused, while another project's run starts at once", async () => {
    const busy = await project("busy", { max_in_flight: 1 });
    const other = await project("other", {});
    // The figure the README gives: how long B's run waits to start, A idle, then A at its limit.
    const idle = (await submit(other.next(), "other", "/quick")).json.run_id as string;
    const idleRun = await other.apis[0]!.finished(idle);
    const first = (await submit(busy.next(), "busy", "/hold/busy1")).json.run_id as string;
    const second = (await submit(busy.next(), "busy", "/hold/busy2")).json.run_id as string;
    expect(second).toBeTruthy();
    await app.waitFor(1, "/hold/busy1");
    await eventually(async () => (await busy.apis[0]!.getRun(first)).json.status === "running");

    // Project B's run starts and ends while A sits at its limit with a backlog.
    const b = (await submit(other.next(), "other", "/quick")).json.run_id as string;
    const bRun = await other.apis[0]!.finished(b);
    expect(bRun.status).toBe("succeeded");
    const waitMs = (r: { created_at: string; started_at: string }) => Date.parse(r.started_at) - Date.parse(r.created_at);
    console.log(
      `fair share: project B's run started ${waitMs(bRun)} ms after its submit while project A sat at max_in_flight ` +
        `with a hanging call and a backlog (${waitMs(idleRun)} ms with A idle)`,
    );
    // A's second run is still waiting: its first still holds the only slot.
    expect((await busy.apis[1]!.getRun(second)).json.status).toBe("queued");
    expect(app.received.filter((r) => r.url.startsWith("/hold/busy2"))).toHaveLength(0);
    expect((await operator.call("GET", "/v1/admin/projects/busy")).json.usage).toMatchObject({ in_flight: 1, queued: 1 });

    holds.get("busy1")!();
    await app.waitFor(1, "/hold/busy2");
    holds.get("busy2")!();
    expect((await busy.apis[0]!.finished(second)).status).toBe("succeeded");
  });

  it("refuses watch streams past max_watch_streams, and frees the slot when one closes", async () => {
    const w = await project("watcher", { max_watch_streams: 1 });
    const id = (await submit(w.next(), "watcher", "/hold/watch")).json.run_id as string;
    const open = new AbortController();
    const first = await fetch(`${gateways[0]}/v1/runs/${id}/events`, { headers: { authorization: `Bearer ${w.key}` }, signal: open.signal });
    expect(first.status).toBe(200);
    const refused = await w.apis[1]!.call("GET", `/v1/runs/${id}/events`);
    expect(refused.status, refused.text).toBe(429);
    expect(refused.json.error.limit).toBe("max_watch_streams");
    expect(refused.headers.get("ratelimit-policy")).toBe('"max_watch_streams";q=1');
    // A long poll is a watch too.
    expect((await w.apis[0]!.call("GET", `/v1/runs/${id}?wait=1`)).status).toBe(429);
    // A plain read is not.
    expect((await w.apis[0]!.getRun(id)).status).toBe(200);

    open.abort();
    await first.body?.cancel().catch(() => undefined);
    await eventually(async () => (await w.apis[1]!.call("GET", `/v1/runs/${id}?wait=1`)).status === 200);
    holds.get("watch")!();
  });
});
