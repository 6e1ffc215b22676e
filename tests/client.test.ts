// @longhaul/client against a real mesh: submit (async and sync), wait,
// events with a reconnect across an ingress restart, listing over cursor
// pages, cancel, retry, redeliver, apps, errors, and verifyWebhook on a
// webhook the notifier really sent.
import { LonghaulApiError, LonghaulClient, verifyWebhook, type Run } from "@longhaul/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let hooks: Peer;
let client: LonghaulClient;
const releases = new Map<string, () => void>();

beforeAll(async () => {
  [mesh, app, hooks] = await Promise.all([
    startTestMesh({ env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true", SCHEDULER_TICK_MS: "200" } }),
    startPeer(),
    startPeer(),
  ]);
  client = new LonghaulClient({ baseUrl: mesh.ingressUrl, apiKey: mesh.apiKey });
  app.handle(async (req, res) => {
    const u = new URL(req.url, "http://x");
    const tag = u.searchParams.get("hold");
    // Held until the test releases it (or forever, for cancel).
    if (tag) await new Promise<void>((resolve) => releases.set(tag, resolve));
    res.writeHead(Number(u.searchParams.get("status") ?? 200), { "content-type": "application/json" });
    res.end(JSON.stringify({ path: u.pathname, body: req.body.toString("utf8") }));
  });
  hooks.handle((_req, res) => {
    res.writeHead(204);
    res.end();
  });
  await client.putApp("echo", { url: app.url, retry: { max_attempts: 1 } });
});

afterAll(async () => {
  for (const r of releases.values()) r();
  await mesh?.cleanup();
  await app?.close();
  await hooks?.close();
});

const released = async (tag: string) => {
  await app.waitFor(1, "/held");
  for (let i = 0; i < 100 && !releases.has(tag); i++) await new Promise((r) => setTimeout(r, 50));
  releases.get(tag)!();
};

describe("@longhaul/client", () => {
  it("submits, waits and reads the result; a sync call streams the app's answer", async () => {
    expect(await client.project()).toBe("dev");
    const accepted = await client.submit("echo", "/work", { body: { n: 1 }, labels: { suite: "client" }, idempotencyKey: "k-1" });
    expect(accepted.location).toBe(`/v1/runs/${accepted.runId}`);
    expect((await client.submit("echo", "/work", { body: { n: 1 }, idempotencyKey: "k-1" })).runId).toBe(accepted.runId);
    const seen: string[] = [];
    const run = await client.wait(accepted.runId, { onUpdate: (r) => seen.push(r.status) });
    expect(run.status).toBe("succeeded");
    expect(run.labels).toEqual({ suite: "client" });
    expect(seen.at(-1)).toBe("succeeded");
    const result = await client.result(accepted.runId);
    expect(JSON.parse(Buffer.from(result.body_base64, "base64").toString())).toEqual({ path: "/work", body: '{"n":1}' });
    expect(await (await client.resultResponse(accepted.runId)).json()).toEqual({ path: "/work", body: '{"n":1}' });
    expect((await client.request(accepted.runId)).method).toBe("POST");

    const sync = await client.call("echo", "/now", { method: "PUT", body: "plain", query: { status: "201" } });
    expect(sync.status).toBe(201);
    expect(await sync.json()).toEqual({ path: "/now", body: "plain" });
  });

  it("wait gives up after timeoutSeconds with the run still going", async () => {
    const { runId } = await client.submit("echo", "/held", { query: { hold: "w" } });
    const run = await client.wait(runId, { timeoutSeconds: 1 });
    expect(["queued", "dispatched", "running"]).toContain(run.status);
    await released("w");
    expect((await client.wait(runId)).status).toBe("succeeded");
  });

  it("events follow a run to its end, reconnecting when the ingress restarts mid-stream", async () => {
    app.received.length = 0;
    const { runId } = await client.submit("echo", "/held", { query: { hold: "e" } });
    const statuses: string[] = [];
    const events = client.events(runId, { maxReconnectDelayMs: 1000 });
    let first: IteratorResult<Run> | undefined;
    for (first = await events.next(); !first.done && first.value.status !== "running"; first = await events.next()) {
      statuses.push(first.value.status);
    }
    statuses.push("running");
    await app.waitFor(1, "/held");
    await mesh.kill("ingress", 0, "SIGKILL");
    await mesh.start("ingress", 0);
    await released("e");
    for await (const run of events) statuses.push(run.status);
    expect(statuses.at(-1)).toBe("succeeded");
    // The restarted ingress answered the stream again: its counter started from zero.
    const metrics = await (await fetch(mesh.metricsUrls.ingress[0]!)).text();
    expect(metrics).toMatch(/longhaul_http_streams_started_total\{[^}]*kind="sse"[^}]*\} [1-9]/);
  });

  it("watchProject streams the project's runs as they are created and change", async () => {
    const stop = new AbortController();
    const feed = client.watchProject({ app: "echo", signal: stop.signal });
    // The first next() opens the stream; a run created just before it listens is caught up (since, less 5 s).
    const firstEvent = feed.next();
    const { runId } = await client.submit("echo", "/watched");
    const seen: string[] = [];
    for (let e = await firstEvent; !e.done; e = await feed.next()) {
      if (e.value.run_id !== runId) continue;
      seen.push(e.value.status);
      if (e.value.status === "succeeded") break;
    }
    stop.abort();
    await feed.return(undefined);
    expect(seen.at(-1)).toBe("succeeded");
  });

  it("lists every run over cursor pages, cancels, retries", async () => {
    await client.putApp("pages", { url: app.url, retry: { max_attempts: 1 } });
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) ids.add((await client.submit("pages", `/p${i}`)).runId);
    const listed: string[] = [];
    for await (const run of client.listRuns({ app: "pages", pageSize: 2 })) listed.push(run.run_id);
    expect(new Set(listed)).toEqual(ids);
    expect(listed).toHaveLength(5);

    const { runId } = await client.submit("echo", "/held", { query: { hold: "c" } });
    expect((await client.cancel(runId)).status).toBe("cancelled");
    const again = await client.retry(runId);
    expect(again.runId).not.toBe(runId);
    expect((await client.getRun(again.runId)).retry_of).toBe(runId);
    await client.cancel(again.runId);
  });

  it("verifyWebhook accepts the notifier's signature and refuses a changed body; redeliver", async () => {
    // A path of this try's own: a retry must not read the webhooks of the try before.
    const path = `/in/${Date.now()}`;
    const { runId } = await client.submit("echo", "/hooked", { body: "payload", webhook: `${hooks.url}${path}` });
    const [received] = await hooks.waitFor(1, path);
    const { secret } = await client.webhookSecret();
    const verified = verifyWebhook(received!.body, received!.headers, secret);
    expect(verified.runId).toBe(runId);
    expect(verified.status).toBe("succeeded");
    expect(verified.statusCode).toBe(200);
    expect(() => verifyWebhook(received!.body.toString() + " ", received!.headers, secret)).toThrow();
    expect(() => verifyWebhook(received!.body, received!.headers, "whsec_" + Buffer.alloc(24).toString("base64"))).toThrow();

    let delivery = await client.deliveries(runId);
    for (let i = 0; i < 50 && delivery.state !== "delivered"; i++) delivery = await client.deliveries(runId);
    expect(delivery.state).toBe("delivered");
    expect((await client.redeliver(runId)).webhook_id).toBe(delivery.webhook_id);
    const [, second] = await hooks.waitFor(2, path);
    expect(verifyWebhook(second!.body, second!.headers, [Buffer.alloc(24).toString("base64"), secret]).webhookId).toBe(delivery.webhook_id);
  });

  it("apps and errors: one class with the API's code and status", async () => {
    expect((await client.listApps()).map((a) => a.name)).toContain("echo");
    expect((await client.getApp("echo")).url).toBe(app.url);
    await client.putApp("temp", { url: app.url });
    await client.deleteApp("temp");
    const missing = await client.getApp("temp").catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(LonghaulApiError);
    expect([(missing as LonghaulApiError).code, (missing as LonghaulApiError).status]).toEqual(["not_found", 404]);
    const bad = await client.putApp("bad", { url: "" }).catch((e: unknown) => e);
    expect((bad as LonghaulApiError).code).toBe("invalid_argument");
    const stranger = new LonghaulClient({ baseUrl: mesh.ingressUrl, apiKey: "lh_nope" });
    const denied = await stranger.getRun("00000000-0000-4000-8000-000000000000").catch((e: unknown) => e);
    expect([(denied as LonghaulApiError).code, (denied as LonghaulApiError).status]).toEqual(["unauthenticated", 401]);
    const nowhere = new LonghaulClient({ baseUrl: "http://127.0.0.1:1", apiKey: "x" });
    const down = await nowhere.listApps().catch((e: unknown) => e);
    expect([(down as LonghaulApiError).code, (down as LonghaulApiError).status]).toEqual(["unavailable", 0]);
  });
});
