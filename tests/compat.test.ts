// RunPod, Replicate and Cerebrium compatibility, driven by those platforms'
// own client libraries from npm (runpod-sdk, replicate) against a real mesh:
// code written for them works against Longhaul with a new base URL.
import Replicate from "replicate";
import runpodSdk from "runpod-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let hooks: Peer;
let api: ReturnType<typeof gateway>;
const releases: (() => void)[] = [];
const attempts = new Map<string, number>();

beforeAll(async () => {
  [mesh, app, hooks] = await Promise.all([
    startTestMesh({ env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true", SCHEDULER_TICK_MS: "200" } }),
    startPeer(),
    startPeer(),
  ]);
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  app.handle(async (req, res) => {
    const body = req.body.length ? (JSON.parse(req.body.toString()) as { id?: string; input?: Record<string, unknown> }) : {};
    const input = body.input ?? {};
    if (input.hold) await new Promise<void>((r) => releases.push(r));
    const key = String(input.key ?? "");
    attempts.set(key, (attempts.get(key) ?? 0) + 1);
    if (input.fail && attempts.get(key) === 1) {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end("boom");
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    const u = new URL(req.url, "http://x");
    // A Cog model answers {"output": …}; the raw case answers bare JSON.
    if (u.pathname === "/predictions") res.end(JSON.stringify(input.raw ? { bare: input } : { output: { echo: input }, status: "succeeded" }));
    else res.end(JSON.stringify({ echo: input, id: body.id ?? null, path: u.pathname }));
  });
  hooks.handle((_req, res) => {
    res.writeHead(204);
    res.end();
  });
  for (const name of ["worker", "cog", "cerebro"]) {
    expect((await api.putApp(name, { url: app.url, retry: { max_attempts: 1 } })).status).toBe(201);
  }
});

afterAll(async () => {
  for (const r of releases) r();
  await mesh?.cleanup();
  await app?.close();
  await hooks?.close();
});

const runCount = async (appName: string) => (await api.call("GET", `/v1/runs?app=${appName}&limit=500`)).json.runs.length as number;

describe("RunPod (runpod-sdk)", () => {
  const endpoint = () => runpodSdk(mesh.apiKey, { baseUrl: `${mesh.ingressUrl}/v2` }).endpoint("worker")!;

  it("run → status → output; the app receives {id, input} as a POST to its URL", async () => {
    const ep = endpoint();
    const queued = await ep.run({ input: { prompt: "hi" } });
    expect(queued.status).toBe("IN_QUEUE");
    const done = await ep.statusSync(queued.id, 30_000);
    expect(done.status).toBe("COMPLETED");
    expect((done as { output: unknown }).output).toEqual({ echo: { prompt: "hi" }, id: queued.id, path: "/" });
    const status = await ep.status(queued.id);
    expect(status).toMatchObject({ id: queued.id, status: "COMPLETED", completed: true, succeeded: true });
    expect(typeof (status as { executionTime: number }).executionTime).toBe("number");
    expect(typeof (status as { delayTime: number }).delayTime).toBe("number");
    const received = app.received.find((r) => r.body.toString().includes(queued.id))!;
    expect([received.method, received.url, received.headers["content-type"]]).toEqual(["POST", "/", "application/json"]);
    const streamed: unknown[] = [];
    for await (const part of ep.stream(queued.id)) streamed.push(part);
    expect(streamed).toEqual([{ output: { echo: { prompt: "hi" }, id: queued.id, path: "/" } }]);
  });

  it("a job's webhook receives RunPod's job object", async () => {
    const queued = await endpoint().run({ input: { hooked: 1 }, webhook: `${hooks.url}/runpod` });
    const [delivered] = await hooks.waitFor(1, "/runpod");
    const job = JSON.parse(delivered!.body.toString());
    expect(job).toMatchObject({ id: queued.id, status: "COMPLETED", output: { echo: { hooked: 1 }, id: queued.id, path: "/" } });
    expect(typeof job.delayTime).toBe("number");
    expect(typeof job.executionTime).toBe("number");
    expect(delivered!.headers["content-type"]).toBe("application/json");
    expect(delivered!.headers["webhook-signature"]).toMatch(/^v1,/);
  });

  it("runSync answers the finished job", async () => {
    const out = await endpoint().runSync({ input: { n: 2 }, policy: { executionTimeout: 60_000 } });
    expect(out).toMatchObject({ status: "COMPLETED", output: { echo: { n: 2 } }, succeeded: true });
  });

  it("cancel, retry of a failed job under the same id, purge-queue and health", async () => {
    const ep = endpoint();
    const held = await ep.run({ input: { hold: true } });
    await app.waitFor(1);
    expect((await ep.cancel(held.id)).status).toBe("CANCELLED");
    expect((await ep.status(held.id)).status).toBe("CANCELLED");

    const failing = await ep.run({ input: { fail: true, key: "f1" } });
    const failed = await ep.statusSync(failing.id, 30_000);
    expect(failed.status).toBe("FAILED");
    expect((failed as { error?: string }).error).toContain("500");
    const retry = await fetch(`${mesh.ingressUrl}/v2/worker/retry/${failing.id}`, { method: "POST", headers: { authorization: `Bearer ${mesh.apiKey}` } });
    expect(await retry.json()).toEqual({ id: failing.id, status: "IN_QUEUE" });
    expect((await ep.statusSync(failing.id, 30_000)).status).toBe("COMPLETED");

    expect((await api.call("POST", "/v1/apps/worker/pause")).status).toBe(200);
    const a = await ep.run({ input: { q: 1 } });
    const b = await ep.run({ input: { q: 2 } });
    expect(await ep.purgeQueue()).toEqual({ removed: 2, status: "completed" });
    expect([(await ep.status(a.id)).status, (await ep.status(b.id)).status]).toEqual(["CANCELLED", "CANCELLED"]);
    await api.call("POST", "/v1/apps/worker/resume");

    const health = await ep.health();
    expect(health.jobs.completed).toBeGreaterThanOrEqual(3);
    expect(health.jobs.inQueue).toBe(0);
  });

  it("policy.ttl: the run's timeout is at most the ttl, and a job past it never reaches the app, and is gone", async () => {
    expect((await api.putApp("ttl-worker", { url: app.url, max_concurrency: 1, retry: { max_attempts: 1 } })).status).toBe(201);
    const post = async (path: string, body: unknown) => {
      const r = await fetch(`${mesh.ingressUrl}/v2/ttl-worker${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${mesh.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: r.status, json: (await r.json()) as { id: string; status: string; error?: string } };
    };
    const status = async (id: string) => {
      const r = await fetch(`${mesh.ingressUrl}/v2/ttl-worker/status/${id}`, { headers: { authorization: `Bearer ${mesh.apiKey}` } });
      return { status: r.status, json: (await r.json()) as { status?: string; error?: string } };
    };
    const runOf = async (jobId: string) => (await api.call("GET", `/v1/runs?label=runpod_job:${jobId}`)).json.runs[0];

    // One call at a time: the blocker holds it, the job with a ttl waits behind it.
    const blocker = await post("/run", { input: { hold: true } });
    await eventually(async () => app.received.some((r) => r.body.toString().includes(blocker.json.id)), 20_000, "the blocker to reach the app");
    const late = await post("/run", { input: { key: "late" }, policy: { ttl: 1500 } });
    expect(late).toMatchObject({ status: 200, json: { status: "IN_QUEUE" } });
    const run = await runOf(late.json.id);
    expect(run).toMatchObject({ status: "queued", timeout_seconds: 2 });
    expect(Number(run.labels.runpod_expires) - Date.parse(run.created_at)).toBeGreaterThanOrEqual(1000);

    const gone = await eventually(async () => {
      const s = await status(late.json.id);
      return s.status === 404 ? s : undefined;
    }, 20_000, "the job to outlive its ttl");
    expect(gone.json.error).toContain("ttl");
    // Ended by the scheduler at its deadline (1 s: the ttl in whole seconds, rounded down), before anyone asked.
    expect(await runOf(late.json.id)).toMatchObject({ status: "expired", error_code: "queue_ttl_exceeded", started_at: null });

    for (const r of releases.splice(0)) r();
    await eventually(async () => (await status(blocker.json.id)).json.status === "COMPLETED", 20_000, "the blocker to end");
    expect(app.received.some((r) => r.body.toString().includes(late.json.id))).toBe(false);
  });

  it("policy.ttl: a queued job nobody asks about is never started past its ttl; it ends TIMED_OUT and its webhook says so", async () => {
    expect((await api.putApp("ttl-queue", { url: app.url, max_concurrency: 1, retry: { max_attempts: 1 } })).status).toBe(201);
    const ep = runpodSdk(mesh.apiKey, { baseUrl: `${mesh.ingressUrl}/v2` }).endpoint("ttl-queue")!;
    const runOf = async (jobId: string) => (await api.call("GET", `/v1/runs?label=runpod_job:${jobId}`)).json.runs[0];
    const reached = (jobId: string) => app.received.some((r) => r.body.toString().includes(jobId));

    // The app's one slot is busy: the job with a ttl waits queued behind the blocker.
    const blocker = await ep.run({ input: { hold: true } });
    await eventually(async () => reached(blocker.id), 20_000, "the blocker to reach the app");
    const late = await ep.run({ input: { key: "never" }, policy: { ttl: 2000 }, webhook: `${hooks.url}/runpod-ttl` });
    const queued = await runOf(late.id);
    expect(queued).toMatchObject({ status: "queued", error_code: null });
    expect(Date.parse(queued.expires_at) - Date.parse(queued.created_at)).toBeGreaterThanOrEqual(1900);
    expect(Date.parse(queued.expires_at) - Date.parse(queued.created_at)).toBeLessThanOrEqual(2100);

    // Nobody asks about it (a /v2 question past the ttl would cancel it): the scheduler ends it by itself.
    const ended = await eventually(async () => {
      const r = await runOf(late.id);
      return r.status === "queued" ? undefined : r;
    }, 20_000, "the job to expire in the queue");
    expect(ended).toMatchObject({ status: "expired", error_code: "queue_ttl_exceeded", started_at: null, attempts: [] });
    expect(Date.parse(ended.finished_at)).toBeGreaterThanOrEqual(Date.parse(queued.expires_at));
    const [hook] = await hooks.waitFor(1, "/runpod-ttl");
    expect(JSON.parse(hook!.body.toString())).toMatchObject({ id: late.id, status: "TIMED_OUT" });
    expect(hook!.headers["webhook-signature"]).toMatch(/^v1,/);

    // The slot frees: the next job queued runs, and the expired one never does.
    const after = await ep.run({ input: { key: "after" } });
    for (const r of releases.splice(0)) r();
    expect((await ep.statusSync(after.id, 30_000)).status).toBe("COMPLETED");
    expect((await ep.status(blocker.id)).status).toBe("COMPLETED");
    expect(reached(late.id)).toBe(false);
    expect((await runOf(late.id)).status).toBe("expired");
  });

  it("policy.ttl: a retried job keeps its lifetime; queued past it, the retry never starts", async () => {
    expect([200, 201]).toContain((await api.putApp("ttl-retry", { url: app.url, max_concurrency: 1, retry: { max_attempts: 1 } })).status);
    const key = `ttl-retry-${Date.now()}`;
    const ep = runpodSdk(mesh.apiKey, { baseUrl: `${mesh.ingressUrl}/v2` }).endpoint("ttl-retry")!;
    const runsOf = async (jobId: string) => (await api.call("GET", `/v1/runs?label=runpod_job:${jobId}`)).json.runs as Record<string, any>[];

    // The app fails a key's first call: the job fails at once, well within its ttl.
    const job = await ep.run({ input: { fail: true, key }, policy: { ttl: 6000 } });
    expect((await ep.statusSync(job.id, 30_000)).status).toBe("FAILED");
    // Then the app's one slot is taken: the retry waits queued behind the blocker.
    const blocker = await ep.run({ input: { hold: true } });
    await eventually(async () => app.received.some((r) => r.body.toString().includes(blocker.id)), 20_000, "the blocker to reach the app");
    const retry = await fetch(`${mesh.ingressUrl}/v2/ttl-retry/retry/${job.id}`, { method: "POST", headers: { authorization: `Bearer ${mesh.apiKey}` } });
    expect(await retry.json()).toEqual({ id: job.id, status: "IN_QUEUE" });
    const [again, first] = await runsOf(job.id);
    expect(again).toMatchObject({ status: "queued", retry_of: first!.run_id });
    // Its deadline is the job's end (submit + ttl), in whole seconds: not the whole ttl again from the retry.
    const end = Number(first!.labels.runpod_expires);
    expect(Date.parse(again!.expires_at)).toBeLessThanOrEqual(end + 50);
    expect(Date.parse(again!.expires_at)).toBeGreaterThan(end - 1100);

    // Nobody asks about it: the scheduler ends it at the job's end, and the app never sees it again.
    const ended = await eventually(async () => {
      const [r] = await runsOf(job.id);
      return r!.status === "queued" ? undefined : r;
    }, 20_000, "the retried job to expire in the queue");
    expect(ended).toMatchObject({ run_id: again!.run_id, status: "expired", error_code: "queue_ttl_exceeded", started_at: null });
    for (const r of releases.splice(0)) r();
    expect((await ep.statusSync(blocker.id, 30_000)).status).toBe("COMPLETED");
    expect(attempts.get(key)).toBe(1);
  });

  it("bad input: RunPod's error shape and status, nothing stored", async () => {
    const before = await runCount("worker");
    const post = (path: string, body: string) =>
      fetch(`${mesh.ingressUrl}/v2/worker${path}`, { method: "POST", headers: { authorization: `Bearer ${mesh.apiKey}`, "content-type": "application/json" }, body });
    const malformed = await post("/run", "{not json");
    expect([malformed.status, typeof (await malformed.json()).error]).toEqual([400, "string"]);
    const noInput = await post("/run", '{"prompt":"no input field"}');
    expect(noInput.status).toBe(400);
    expect((await noInput.json()).error).toContain("input");
    for (const ttl of ["0", "-1000", '"soon"', "604800001"]) {
      const badTtl = await post("/run", `{"input":{},"policy":{"ttl":${ttl}}}`);
      expect([badTtl.status, Object.keys(await badTtl.json())]).toEqual([400, ["error"]]);
    }
    const unknownJob = await fetch(`${mesh.ingressUrl}/v2/worker/status/00000000-0000-4000-8000-000000000000`, { headers: { authorization: `Bearer ${mesh.apiKey}` } });
    expect([unknownJob.status, Object.keys(await unknownJob.json())]).toEqual([404, ["error"]]);
    const unknownEndpoint = await post("/bogus", "{}");
    expect([unknownEndpoint.status, Object.keys(await unknownEndpoint.json())]).toEqual([404, ["error"]]);
    const noKey = await fetch(`${mesh.ingressUrl}/v2/worker/health`);
    expect([noKey.status, Object.keys(await noKey.json())]).toEqual([401, ["error"]]);
    const unknownApp = await fetch(`${mesh.ingressUrl}/v2/nope/run`, { method: "POST", headers: { authorization: `Bearer ${mesh.apiKey}` }, body: '{"input":{}}' });
    expect(unknownApp.status).toBe(404);
    expect(await runCount("worker")).toBe(before);
  });
});

describe("Replicate (replicate)", () => {
  const replicate = () => new Replicate({ auth: mesh.apiKey, baseUrl: `${mesh.ingressUrl}/replicate/v1` });

  it("predictions.create → wait: `version` names the app, which receives {input} at /predictions", async () => {
    const r = replicate();
    const created = await r.predictions.create({ version: "cog", input: { prompt: "a cat" } });
    expect(["starting", "processing", "succeeded"]).toContain(created.status);
    expect(created.urls.get).toBe(`${mesh.ingressUrl}/replicate/v1/predictions/${created.id}`);
    const done = await r.wait(created, { interval: 100 });
    expect(done.status).toBe("succeeded");
    expect(done.output).toEqual({ echo: { prompt: "a cat" } });
    expect(done.input).toEqual({ prompt: "a cat" });
    const received = app.received.find((x) => x.url === "/predictions" && x.body.toString().includes("a cat"))!;
    expect(JSON.parse(received.body.toString())).toEqual({ input: { prompt: "a cat" } });
  });

  it("run (models route, Prefer: wait); an answer without `output` is the output itself", async () => {
    const r = replicate();
    expect(await r.run("longhaul/cog", { input: { n: 1 } })).toEqual({ echo: { n: 1 } });
    expect(await r.run("longhaul/cog:cog", { input: { raw: 1 } })).toEqual({ bare: { raw: 1 } });
  });

  it("a webhook receives the prediction, completed", async () => {
    const r = replicate();
    const created = await r.predictions.create({ version: "cog", input: { hooked: 2 }, webhook: `${hooks.url}/replicate`, webhook_events_filter: ["start", "completed"] });
    const [delivered] = await hooks.waitFor(1, "/replicate");
    expect(JSON.parse(delivered!.body.toString())).toMatchObject({
      id: created.id,
      status: "succeeded",
      version: "cog",
      input: { hooked: 2 },
      output: { echo: { hooked: 2 } },
      error: null,
    });
    expect(hooks.received.filter((x) => x.url === "/replicate")).toHaveLength(1);
  });

  it("cancel and list", async () => {
    const r = replicate();
    const held = await r.predictions.create({ version: "cog", input: { hold: true } });
    const cancelled = await r.predictions.cancel(held.id);
    expect(cancelled.status).toBe("canceled");
    const page = await r.predictions.list();
    expect(page.results.map((p) => p.id)).toContain(held.id);
    expect(page.results.every((p) => p.version === "cog")).toBe(true);
  });

  it("bad input: Replicate's problem details, nothing stored", async () => {
    const before = await runCount("cog");
    const r = replicate();
    await expect(r.predictions.create({ version: "cog", input: "not an object" as unknown as object })).rejects.toThrow(/422/);
    await expect(r.predictions.get("00000000-0000-4000-8000-000000000000")).rejects.toThrow(/404/);
    const res = await fetch(`${mesh.ingressUrl}/replicate/v1/trainings`, { headers: { authorization: `Bearer ${mesh.apiKey}` } });
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(await res.json()).toMatchObject({ status: 404, title: "Not found" });
    expect(await runCount("cog")).toBe(before);
  });
});

describe("Cerebrium's URL shape", () => {
  it("/v4/{project}/{app}/{path}?async=true&webhookEndpoint= is the gateway route", async () => {
    const hook = `${hooks.url}/cerebrium`;
    const res = await api.call("POST", `/v4/dev/cerebro/predict?async=true&webhookEndpoint=${encodeURIComponent(hook)}`, { prompt: "x" });
    expect(res.status).toBe(202);
    const [delivered] = await hooks.waitFor(1, "/cerebrium");
    expect(delivered!.headers["x-longhaul-run-id"]).toBe(res.json.run_id);
    expect(JSON.parse(delivered!.body.toString())).toEqual({ echo: {}, id: null, path: "/predict" });
    const sync = await api.call("POST", "/v4/dev/cerebro/predict", { prompt: "y" });
    expect([sync.status, sync.json.path]).toEqual([200, "/predict"]);
  });
});
