// A run's life end to end: every state transition of a run through the real mesh,
// with two scheduler processes sharing the work.
import { Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callUnary, createClient } from "@longhaul/shared/grpc";
import { runsPb } from "@longhaul/shared/proto";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let api: ReturnType<typeof gateway>;

beforeAll(async () => {
  app = await startPeer();
  mesh = await startTestMesh({
    services: { scheduler: 2 },
    env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true", SCHEDULER_TICK_MS: "200" },
  });
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  // Each test uses its own app (own path on the peer) so tests do not interfere.
  app.handle(async (req, res, raw) => {
    const u = new URL(req.url, "http://x");
    const hold = Number(u.searchParams.get("hold") ?? 0);
    if (hold) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, hold);
        raw.socket.once("close", () => {
          clearTimeout(t);
          closed.add(u.searchParams.get("tag") ?? "");
          resolve();
        });
      });
      if (res.destroyed || raw.socket.destroyed) return;
    }
    const status = Number(u.searchParams.get("status") ?? 200);
    res.writeHead(status, { "content-type": "text/plain", ...(status === 503 ? { "retry-after": "1" } : {}) });
    res.end(`done ${u.pathname}`);
  });
});

const closed = new Set<string>();

afterAll(async () => {
  await mesh?.cleanup();
  await app?.close();
});

async function submit(appName: string, path: string, headers: Record<string, string> = {}) {
  const r = await api.call("POST", `/dev/${appName}${path}${path.includes("?") ? "&" : "?"}async=true`, "body", headers);
  expect(r.status, r.text).toBe(202);
  return r.json.run_id as string;
}

describe("run lifecycle", () => {
  it("cancels a running run: the app sees its connection closed and the run ends cancelled", async () => {
    await api.putApp("holder", { url: app.url });
    const id = await submit("holder", "/work?hold=60000&tag=cancel-me");
    await eventually(async () => (await api.getRun(id)).json?.status === "running", 10_000, "running");
    const cancelledAt = Date.now();
    const res = await api.call("POST", `/v1/runs/${id}/cancel`);
    expect(res.status).toBe(200);
    expect(res.json.status).toBe("cancelled");
    await eventually(async () => closed.has("cancel-me"), 5_000, "the app to see its connection closed");
    expect(Date.now() - cancelledAt).toBeLessThan(5_000);
    const run = (await api.getRun(id)).json;
    expect(run).toMatchObject({ status: "cancelled", error_code: "cancelled_by_user" });
    // Cancelling a finished run is a conflict.
    expect((await api.call("POST", `/v1/runs/${id}/cancel`)).status).toBe(409);
  });

  it("cancels a queued run at once", async () => {
    await api.putApp("one-at-a-time", { url: app.url, max_concurrency: 1 });
    const blocker = await submit("one-at-a-time", "/b?hold=60000&tag=blocker");
    const waiting = await submit("one-at-a-time", "/w");
    expect((await api.getRun(waiting)).json.status).toBe("queued");
    expect((await api.call("POST", `/v1/runs/${waiting}/cancel`)).json.status).toBe("cancelled");
    await api.call("POST", `/v1/runs/${blocker}/cancel`);
  });

  it("times out a call that outlives the run's timeout", async () => {
    await api.putApp("slow", { url: app.url, timeout_seconds: 60 });
    const id = await submit("slow", "/slow?hold=30000&tag=slow", { "x-longhaul-timeout": "1" });
    const run = await api.finished(id);
    expect(run).toMatchObject({ status: "timed_out", error_code: "timeout", timeout_seconds: 1 });
  });

  it("retries a 503 honouring Retry-After until the attempts run out", async () => {
    await api.putApp("flaky", { url: app.url, retry: { max_attempts: 3, initial_backoff_seconds: 0.2 } });
    let calls = 0;
    const id = await submit("flaky", "/flaky?status=503");
    // The second attempt must be told apart: switch the app's answer after the first call.
    await eventually(async () => {
      calls = app.received.filter((r) => r.url.startsWith("/flaky")).length;
      return calls >= 1;
    }, 10_000, "first attempt");
    const run = await eventually(async () => {
      const r = (await api.getRun(id)).json;
      return r.attempt >= 2 ? r : undefined;
    }, 15_000, "second attempt");
    expect(run.attempt).toBeGreaterThanOrEqual(2);
    const final = await api.finished(id);
    // Both attempts got 503 here (the app keeps answering so) until the last: failed after 3.
    expect(final).toMatchObject({ status: "failed", status_code: 503, attempt: 3 });
    expect(final.attempts).toHaveLength(3);
    const gaps = final.attempts.slice(1).map((a: { started_at: string }, i: number) => new Date(a.started_at).getTime() - new Date(final.attempts[i].finished_at).getTime());
    // Retry-After: 1 is honoured: no retry came sooner than a second.
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(900);
  });

  it("retries a 503 and succeeds on the next attempt", async () => {
    await api.putApp("recovering", { url: app.url, retry: { max_attempts: 3, initial_backoff_seconds: 0.2 } });
    let n = 0;
    const idHolder: { id?: string } = {};
    app.handle((req, res) => {
      if (req.url.startsWith("/recover")) {
        n++;
        res.writeHead(n === 1 ? 503 : 200, { "content-type": "text/plain" });
        res.end(n === 1 ? "busy" : "fine");
        return;
      }
      res.end("other");
    });
    idHolder.id = await submit("recovering", "/recover");
    const run = await api.finished(idHolder.id);
    expect(run).toMatchObject({ status: "succeeded", status_code: 200, attempt: 2 });
    expect(run.attempts.map((a: { status_code: number }) => a.status_code)).toEqual([503, 200]);
    const seen = app.received.filter((r) => r.url.startsWith("/recover"));
    expect(seen.map((r) => r.headers["x-longhaul-attempt"])).toEqual(["1", "2"]);
    expect(new Set(seen.map((r) => r.headers["idempotency-key"]))).toEqual(new Set([idHolder.id]));
  });

  it("expires a run that waited in the queue past the app's TTL", async () => {
    app.handle(async (req, res, raw) => {
      const u = new URL(req.url, "http://x");
      const hold = Number(u.searchParams.get("hold") ?? 0);
      if (hold) await new Promise<void>((r) => { const t = setTimeout(r, hold); raw.socket.once("close", () => { clearTimeout(t); r(); }); });
      if (!res.destroyed) res.end("ok");
    });
    await api.putApp("ttl", { url: app.url, max_concurrency: 1, queue_ttl_seconds: 1 });
    const blocker = await submit("ttl", "/b?hold=60000");
    const waiting = await submit("ttl", "/w");
    const run = await api.finished(waiting, 15_000);
    expect(run).toMatchObject({ status: "expired", error_code: "queue_ttl_exceeded" });
    await api.call("POST", `/v1/runs/${blocker}/cancel`);
  });

  it("expires a run not started within its own X-Longhaul-Queue-Ttl; a bad one is refused and stores nothing", async () => {
    app.handle(async (req, res, raw) => {
      const u = new URL(req.url, "http://x");
      const hold = Number(u.searchParams.get("hold") ?? 0);
      if (hold) await new Promise<void>((r) => { const t = setTimeout(r, hold); raw.socket.once("close", () => { clearTimeout(t); r(); }); });
      if (!res.destroyed) res.end("ok");
    });
    // The app has no queue TTL of its own: the run's deadline is the only one.
    await api.putApp("own-ttl", { url: app.url, max_concurrency: 1 });
    const blocker = await submit("own-ttl", "/b?hold=60000");
    const waiting = await submit("own-ttl", "/never-started?queueTtl=1");
    const queued = (await api.getRun(waiting)).json;
    expect(Date.parse(queued.expires_at) - Date.parse(queued.created_at)).toBeGreaterThanOrEqual(990);
    const run = await api.finished(waiting, 15_000);
    expect(run).toMatchObject({ status: "expired", error_code: "queue_ttl_exceeded", started_at: null });
    // The slot frees: the next run goes through it, the expired one never does.
    await api.call("POST", `/v1/runs/${blocker}/cancel`);
    expect((await api.finished(await submit("own-ttl", "/after-expiry"), 15_000)).status).toBe("succeeded");
    expect(app.received.some((r) => r.url.startsWith("/never-started"))).toBe(false);

    const count = async () => (await api.call("GET", "/v1/runs?app=own-ttl&limit=500")).json.runs.length as number;
    const before = await count();
    for (const [path, headers] of [
      ["/x?queueTtl=0", {}],
      ["/x?queueTtl=-3", {}],
      ["/x?queueTtl=soon", {}],
      ["/x", { "x-longhaul-queue-ttl": "2592001" }],
      ["/x", { "x-longhaul-queue-ttl": "5", "x-longhaul-delay": "10" }],
    ] as const) {
      const r = await api.call("POST", `/dev/own-ttl${path}${path.includes("?") ? "&" : "?"}async=true`, "x", headers);
      expect([r.status, r.json.error.code], r.text).toEqual([400, "invalid_argument"]);
      expect(r.json.error.message).toMatch(/queueTtl|Queue-Ttl/);
    }
    // A sync call has no queue to wait in.
    expect((await api.call("POST", "/dev/own-ttl/x?queueTtl=5", "x")).status).toBe(400);
    // Over gRPC: INVALID_ARGUMENT.
    const runs = createClient(runsPb.RunServiceClient, mesh.addresses.scheduler);
    try {
      const md = new Metadata();
      md.set("authorization", `Bearer ${mesh.apiKey}`);
      const req = runsPb.SubmitRunRequest.fromPartial({ app: "own-ttl", request: { method: "POST", path: "/x" }, queueTtlSeconds: -1 });
      await expect(callUnary(runs.submitRun.bind(runs), req, md, 10_000)).rejects.toMatchObject({
        code: "invalid_argument",
        message: expect.stringContaining("queue_ttl_seconds"),
      });
    } finally {
      runs.close();
    }
    expect(await count()).toBe(before);
  });

  it("starts a delayed run no earlier than asked, and higher priority first in a queue", async () => {
    app.handle((req, res) => res.end(`ok ${req.url}`));
    await api.putApp("later", { url: app.url });
    const submittedAt = Date.now();
    const id = await submit("later", "/delayed", { "x-longhaul-delay": "2" });
    const queued = (await api.getRun(id)).json;
    expect(queued.status).toBe("queued");
    expect(new Date(queued.not_before).getTime()).toBeGreaterThanOrEqual(submittedAt + 1500);
    const run = await api.finished(id, 20_000);
    expect(run.status).toBe("succeeded");
    expect(new Date(run.started_at).getTime() - submittedAt).toBeGreaterThanOrEqual(1900);
    expect((await api.call("POST", "/dev/later/x?async=true", "x", { "x-longhaul-delay": "-1" })).status).toBe(400);

    // One slot, held; then a low and a high priority run wait: the high one goes first.
    app.handle(async (req, res, raw) => {
      if (req.url.startsWith("/hold")) await new Promise<void>((r) => { const t = setTimeout(r, 60_000); raw.socket.once("close", () => { clearTimeout(t); r(); }); });
      if (!res.destroyed) res.end("ok");
    });
    await api.putApp("ranked", { url: app.url, max_concurrency: 1 });
    const blocker = await submit("ranked", "/hold");
    await eventually(async () => (await api.getRun(blocker)).json?.status === "running", 10_000, "blocker running");
    const low = await submit("ranked", "/low", { "x-longhaul-priority": "-5" });
    const high = await submit("ranked", "/high", { "x-longhaul-priority": "50" });
    await api.call("POST", `/v1/runs/${blocker}/cancel`);
    const [h, l] = await Promise.all([api.finished(high), api.finished(low)]);
    expect(new Date(h.started_at).getTime()).toBeLessThan(new Date(l.started_at).getTime());
  });

  it("holds a concurrency limit of 2 across two schedulers: the app never sees more than 2 at once", async () => {
    let inFlight = 0;
    let peak = 0;
    app.handle(async (req, res) => {
      if (!req.url.startsWith("/limited")) return void res.end("x");
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 300));
      inFlight--;
      res.end("ok");
    });
    await api.putApp("limited", { url: app.url, max_concurrency: 2 });
    const ids = await Promise.all(Array.from({ length: 10 }, () => submit("limited", "/limited")));
    const runs = await Promise.all(ids.map((id) => api.finished(id, 60_000)));
    expect(runs.every((r) => r.status === "succeeded")).toBe(true);
    expect(peak).toBe(2);
  });

  it("retries a finished run as a new run linked to the old one", async () => {
    app.handle((_req, res) => res.end("again"));
    await api.putApp("again", { url: app.url });
    const first = await submit("again", "/a");
    await api.finished(first);
    const res = await api.call("POST", `/v1/runs/${first}/retry`);
    expect(res.status).toBe(202);
    const second = res.json.run_id as string;
    expect(second).not.toBe(first);
    expect(await api.finished(second)).toMatchObject({ status: "succeeded", retry_of: first });
  });

  it("lists runs newest first with a cursor, and rejects bad filters", async () => {
    app.handle((_req, res) => res.end("l"));
    await api.putApp("lister", { url: app.url });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await submit("lister", "/l"));
    const p1 = await api.call("GET", "/v1/runs?app=lister&limit=2");
    expect(p1.status).toBe(200);
    expect(p1.json.runs.map((r: { run_id: string }) => r.run_id)).toEqual([ids[4], ids[3]]);
    const p2 = await api.call("GET", `/v1/runs?app=lister&limit=2&cursor=${encodeURIComponent(p1.json.next_cursor)}`);
    expect(p2.json.runs.map((r: { run_id: string }) => r.run_id)).toEqual([ids[2], ids[1]]);
    expect((await api.call("GET", "/v1/runs?status=bogus")).status).toBe(400);
    expect((await api.call("GET", "/v1/runs?cursor=bogus")).status).toBe(400);
    expect((await api.call("GET", "/v1/runs?limit=100000")).status).toBe(400);
    expect((await api.call("GET", "/v1/runs/not-a-uuid")).status).toBe(404);
    expect((await api.call("GET", "/v1/runs/00000000-0000-4000-8000-000000000000")).status).toBe(404);
  });

  it("streams a run's state changes as server-sent events until it finishes", async () => {
    app.handle(async (_req, res) => {
      await new Promise((r) => setTimeout(r, 500));
      res.end("sse");
    });
    await api.putApp("sse", { url: app.url });
    const id = await submit("sse", "/s");
    const res = await fetch(`${mesh.ingressUrl}/v1/runs/${id}/events`, { headers: { authorization: `Bearer ${mesh.apiKey}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const text = await res.text(); // the stream ends once the run is finished
    const statuses = [...text.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]!).status as string);
    expect(statuses.at(-1)).toBe("succeeded");
    expect(statuses).toContain("running");
  });
  it("an app paused, changed or deleted through one scheduler copy is seen by every submit at once, whichever copy takes it", async () => {
    // Both copies hold the app's settings for their fast path first.
    await api.putApp("flip", { url: app.url });
    for (let i = 0; i < 6; i++) await submit("flip", "/warm");
    expect((await api.call("POST", "/v1/apps/flip/pause")).status).toBe(200);
    // Ten submits spread over both copies: none may be dispatched while paused.
    const held = [];
    for (let i = 0; i < 10; i++) held.push(await submit("flip", "/held"));
    for (const id of held) expect((await api.getRun(id)).json.status).toBe("queued");
    expect(app.received.some((r) => r.url.startsWith("/held"))).toBe(false);
    expect((await api.call("POST", "/v1/apps/flip/resume")).status).toBe(200);
    for (const id of held) expect((await api.finished(id, 15_000)).status).toBe("succeeded");
    // A new URL is used by the next submit on either copy.
    await api.putApp("flip", { url: `${app.url}/moved` });
    const moved = [];
    for (let i = 0; i < 6; i++) moved.push(await submit("flip", "/after"));
    for (const id of moved) expect((await api.finished(id, 15_000)).status).toBe("succeeded");
    expect(app.received.filter((r) => r.url.startsWith("/moved/after")).length).toBe(6);
    // Deleted: every copy refuses at once.
    expect((await api.call("DELETE", "/v1/apps/flip")).status).toBe(204);
    for (let i = 0; i < 4; i++) {
      const r = await api.call("POST", "/dev/flip/x?async=true", "body");
      expect(r.status, r.text).toBe(404);
    }
  });
});
