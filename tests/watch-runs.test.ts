// The project-wide feed of runs end to end: RunService/WatchRuns on the real
// scheduler (fed by `<p>.run.changed.<project>.<run_id>` notices on NATS),
// and the ingress's `GET /v1/events` built on it. Runs are created, run,
// finish, deliver their webhook, queue and get cancelled; each change
// arrives on both, and another project's runs never do.
import { Metadata, type ClientReadableStream } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@longhaul/shared/grpc";
import { runsPb } from "@longhaul/shared/proto";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";
import { readSse } from "../services/client/src/sse.js";

const OTHER_KEY = "lh_other_0123456789abcdef0123456789";
const S = runsPb.RunStatus;

let mesh: TestMesh;
let app: Peer;
let hook: Peer;
let dev: ReturnType<typeof gateway>;
let other: ReturnType<typeof gateway>;
const closers: (() => void)[] = [];

beforeAll(async () => {
  [app, hook] = await Promise.all([startPeer(), startPeer()]);
  // `?hold=ms` keeps the call open that long, so the run is seen running.
  app.handle(async (req, res) => {
    const hold = Number(new URL(req.url, "http://x").searchParams.get("hold") ?? 0);
    if (hold) await new Promise((r) => setTimeout(r, hold));
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("done");
  });
  hook.handle((_req, res) => {
    res.end("ok");
  });
  mesh = await startTestMesh({
    env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true", LONGHAUL_API_KEYS: `other:${OTHER_KEY}`, SCHEDULER_TICK_MS: "200" },
  });
  dev = gateway(mesh.ingressUrl, mesh.apiKey);
  other = gateway(mesh.ingressUrl, OTHER_KEY);
  for (const api of [dev, other]) {
    expect((await api.putApp("work", { url: app.url })).status).toBe(201);
  }
  expect((await dev.putApp("elsewhere", { url: app.url })).status).toBe(201);
  expect((await dev.putApp("single", { url: app.url, max_concurrency: 1 })).status).toBe(201);
});

afterAll(async () => {
  for (const close of closers.splice(0)) close();
  await mesh?.cleanup();
  await Promise.all([app?.close(), hook?.close()]);
});

async function submit(api: ReturnType<typeof gateway>, appName: string, path: string, webhook = false): Promise<string> {
  const q = webhook ? `&webhookEndpoint=${encodeURIComponent(`${hook.url}/h`)}` : "";
  const r = await api.call("POST", `/${api === other ? "other" : "dev"}/${appName}${path}${path.includes("?") ? "&" : "?"}async=true${q}`, "{}");
  expect(r.status, r.text).toBe(202);
  return r.json.run_id as string;
}

interface RunJson {
  run_id: string;
  app: string;
  status: string;
  webhook_state: string;
}

/** Reads `/v1/events` in the background: its `event: run` frames collect in `runs`, with the time each came. */
async function openEvents(query = "") {
  const ac = new AbortController();
  closers.push(() => ac.abort());
  const res = await fetch(`${mesh.ingressUrl}/v1/events${query}`, { headers: { authorization: `Bearer ${mesh.apiKey}` }, signal: ac.signal });
  expect(res.status).toBe(200);
  const runs: (RunJson & { at: number })[] = [];
  const others: string[] = [];
  void (async () => {
    for await (const { event, data } of readSse(res.body!, () => undefined)) {
      if (event === "run" && data) runs.push({ ...(JSON.parse(data) as RunJson), at: Date.now() });
      else if (event) others.push(event);
    }
  })().catch(() => undefined);
  return { runs, others, of: (id: string) => runs.filter((r) => r.run_id === id), close: () => ac.abort() };
}

/** A WatchRuns stream straight from the scheduler; messages collect as they come. */
function watchRuns(key: string, req: Partial<runsPb.WatchRunsRequest> = {}) {
  const client = createClient(runsPb.RunServiceClient, mesh.addresses.scheduler);
  const md = new Metadata();
  md.set("authorization", `Bearer ${key}`);
  const call: ClientReadableStream<runsPb.WatchRunsResponse> = client.watchRuns(runsPb.WatchRunsRequest.fromPartial(req), md, {
    deadline: Date.now() + 120_000,
  });
  const messages: runsPb.WatchRunsResponse[] = [];
  const state: { error?: Error & { code?: number } } = {};
  call.on("data", (m: runsPb.WatchRunsResponse) => messages.push(m));
  call.on("error", (err: Error) => (state.error = err));
  const close = () => {
    call.cancel();
    client.close();
  };
  closers.push(close);
  const runs = () => messages.flatMap((m) => (m.run ? [m.run] : []));
  return {
    messages,
    state,
    runs,
    of: (id: string) => runs().filter((r) => r.id === id),
    live: () => eventually(async () => messages.length > 0, 10_000, "the first (live) message"),
    close,
  };
}

describe("WatchRuns", () => {
  it("says it is live first, then sends creation and every state change of the project's runs", async () => {
    const w = watchRuns(mesh.apiKey);
    const theirs = watchRuns(OTHER_KEY);
    await Promise.all([w.live(), theirs.live()]);
    expect(w.messages[0]!.run).toBeUndefined();

    const id = await submit(dev, "work", "/a?hold=1500", true);
    const otherId = await submit(other, "work", "/b");
    await eventually(async () => w.of(id).some((r) => r.webhookState === runsPb.WebhookState.WEBHOOK_STATE_DELIVERED), 20_000, "webhook delivered");
    const seen = w.of(id);
    // Created (dispatched at once: the app has room; the claim may beat the first read), then
    // running, succeeded, webhook pending and delivered.
    expect([S.RUN_STATUS_DISPATCHED, S.RUN_STATUS_RUNNING]).toContain(seen[0]!.status);
    expect(seen.map((r) => r.status)).toContain(S.RUN_STATUS_RUNNING);
    expect(seen.at(-1)).toMatchObject({ status: S.RUN_STATUS_SUCCEEDED, project: "dev", app: "work", statusCode: 200, attempts: [] });
    expect(seen.map((r) => r.webhookState)).toContain(runsPb.WebhookState.WEBHOOK_STATE_PENDING);
    // Each state is sent once.
    const keys = seen.map((r) => `${r.status}|${r.webhookState}|${r.attempt}`);
    expect(new Set(keys).size).toBe(keys.length);

    await other.finished(otherId);
    await eventually(async () => theirs.of(otherId).some((r) => r.status === S.RUN_STATUS_SUCCEEDED), 10_000, "their run finished");
    expect(w.runs().every((r) => r.project === "dev")).toBe(true);
    expect(w.of(otherId)).toEqual([]);
    expect(theirs.runs().every((r) => r.project === "other")).toBe(true);
    expect(theirs.of(id)).toEqual([]);
    expect(w.state.error).toBeUndefined();
  });

  it("filters by app, sends queued runs as they are created, and cancellations", async () => {
    const w = watchRuns(mesh.apiKey, { app: "single" });
    await w.live();
    const elsewhere = await submit(dev, "elsewhere", "/x");
    const blocker = await submit(dev, "single", "/b?hold=30000");
    const waiting = await submit(dev, "single", "/w");
    await eventually(async () => w.of(waiting).length > 0, 10_000, "the queued run");
    expect(w.of(waiting)[0]!.status).toBe(S.RUN_STATUS_QUEUED);
    await eventually(async () => w.of(blocker).some((r) => r.status === S.RUN_STATUS_RUNNING), 10_000, "the blocker running");
    expect((await dev.call("POST", `/v1/runs/${waiting}/cancel`)).status).toBe(200);
    expect((await dev.call("POST", `/v1/runs/${blocker}/cancel`)).status).toBe(200);
    await eventually(
      async () => [waiting, blocker].every((id) => w.of(id).at(-1)?.status === S.RUN_STATUS_CANCELLED),
      10_000,
      "both cancelled",
    );
    await dev.finished(elsewhere);
    expect(w.runs().every((r) => r.app === "single")).toBe(true);
  });

  it("catches up on named runs and recent ones right after it is live", async () => {
    const earlier = await submit(dev, "work", "/c");
    await dev.finished(earlier);
    const since = new Date();
    const recent = await submit(dev, "elsewhere", "/d");
    await dev.finished(recent);
    const w = watchRuns(mesh.apiKey, { runIds: [earlier], createdAfter: since });
    await eventually(async () => w.runs().length >= 2, 10_000, "the catch-up");
    expect(w.messages[0]!.run).toBeUndefined();
    expect(w.runs().map((r) => [r.id, r.status])).toEqual(
      expect.arrayContaining([
        [earlier, S.RUN_STATUS_SUCCEEDED],
        [recent, S.RUN_STATUS_SUCCEEDED],
      ]),
    );
    // Bad input is refused before the stream says it is live.
    const bad = watchRuns(mesh.apiKey, { runIds: ["not-a-run"] });
    await eventually(async () => bad.state.error, 10_000, "the refusal");
    expect(bad.messages).toEqual([]);
    expect(bad.state.error!.code).toBe(3); // INVALID_ARGUMENT
  });
});

describe("GET /v1/events", () => {
  it("streams the project's new runs and their changes as they happen, never another project's", async () => {
    const feed = await openEvents();
    const submittedAt = Date.now();
    const id = await submit(dev, "work", "/e?hold=1500", true);
    const otherId = await submit(other, "work", "/f");
    await eventually(async () => feed.of(id).some((r) => r.webhook_state === "delivered"), 20_000, "webhook delivered on the feed");
    const seen = feed.of(id);
    // The creation shows within a moment (no poll interval any more).
    expect(seen[0]!.at - submittedAt).toBeLessThan(1000);
    expect(["dispatched", "running"]).toContain(seen[0]!.status);
    expect(seen.map((r) => r.status)).toEqual(expect.arrayContaining(["running", "succeeded"]));
    expect(seen.at(-1)).toMatchObject({ status: "succeeded", webhook_state: "delivered", app: "work" });
    await other.finished(otherId);
    await new Promise((r) => setTimeout(r, 300));
    expect(feed.of(otherId)).toEqual([]);
    expect(feed.others).toEqual([]);
    feed.close();
  });

  it("sends the named runs and the ones since `since` first, and keeps to `app`", async () => {
    const named = await submit(dev, "work", "/g");
    await dev.finished(named);
    const since = new Date().toISOString();
    const recent = await submit(dev, "single", "/h");
    await dev.finished(recent);
    const feed = await openEvents(`?app=single&run=${named}&since=${since}`);
    await eventually(async () => feed.of(recent).length > 0, 10_000, "the recent run");
    // `named` is of another app: the app filter applies to the catch-up too.
    const fresh = await submit(dev, "single", "/i");
    const skipped = await submit(dev, "work", "/j");
    await eventually(async () => feed.of(fresh).some((r) => r.status === "succeeded"), 10_000, "the fresh run");
    await dev.finished(skipped);
    await new Promise((r) => setTimeout(r, 300));
    expect(feed.runs.every((r) => r.app === "single")).toBe(true);
    expect(feed.of(named)).toEqual([]);
    feed.close();
  });
});
