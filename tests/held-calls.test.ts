// Held calls across deploys and restarts: a draining invoker keeps
// its calls to their end while another takes new work, and leases live in
// Postgres, one per invoker, so a scheduler restart loses nothing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

const LEASE_SECONDS = 6;
let mesh: TestMesh;
let app: Peer;
let api: ReturnType<typeof gateway>;
/** Calls the app saw, by tag. */
const seen = new Map<string, number>();
/** Held calls by tag, answered when the test says so. */
const releases = new Map<string, () => void>();

beforeAll(async () => {
  app = await startPeer();
  app.handle(async (req, res) => {
    const url = new URL(req.url, "http://x");
    const tag = url.searchParams.get("tag") ?? "";
    seen.set(tag, (seen.get(tag) ?? 0) + 1);
    const holdMs = Number(url.searchParams.get("hold_ms") ?? "0");
    if (url.searchParams.has("held")) await new Promise<void>((r) => releases.set(tag, r));
    else await new Promise((r) => setTimeout(r, holdMs));
    res.end(`done ${tag}`);
  });
  // The invokers keep the default drain (12 h): a deploy never cuts a call.
  mesh = await startTestMesh({ services: { invoker: 2 }, env: { SCHEDULER_LEASE_SECONDS: String(LEASE_SECONDS), SCHEDULER_TICK_MS: "200" } });
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  // Not idempotent: any second call would be a bug.
  await api.putApp("work", { url: app.url, retry: { max_attempts: 3, initial_backoff_seconds: 0.2 } });
});

afterAll(async () => {
  for (const r of releases.values()) r();
  await mesh?.cleanup();
  await app?.close();
});

function invokerIndexOf(invokerId: string): number {
  const p = mesh.processes.find((x) => x.name === "invoker" && x.pid !== undefined && invokerId.includes(`-${x.pid}-`));
  if (!p) throw new Error(`no invoker process for ${invokerId}`);
  return p.index;
}

async function running(id: string, what: string) {
  return eventually(async () => {
    const run = (await api.getRun(id)).json;
    return run?.status === "running" && run.attempts?.length ? run : undefined;
  }, 20_000, what);
}

describe("held calls", () => {
  it("SIGTERM drains: a 20-s call is held to its end, while the other invoker takes the new runs", async () => {
    const long = (await api.call("POST", "/dev/work/long?async=true&tag=drain-long&hold_ms=20000", "x")).json.run_id as string;
    const holder = invokerIndexOf((await running(long, "long call running")).attempts[0].invoker_id);
    let exited = false;
    const exit = mesh.kill("invoker", holder, "SIGTERM", 60_000).finally(() => (exited = true));
    // The drain has begun (the invoker says so), and the call is still held.
    await eventually(async () => /draining/.test(mesh.logs("invoker", holder)), 10_000, "drain begun");

    // New runs go to the other invoker while the first one drains.
    const fresh: string[] = [];
    for (let i = 0; i < 5; i++) fresh.push((await api.call("POST", `/dev/work/quick?async=true&tag=drain-new-${i}`, "x")).json.run_id);
    for (const id of fresh) {
      const run = await api.finished(id, 30_000);
      expect(run).toMatchObject({ status: "succeeded", attempt: 1 });
      expect(invokerIndexOf(run.attempts[0].invoker_id)).not.toBe(holder);
    }
    expect(exited).toBe(false);

    // The long call ends on its own, once, on the draining invoker; then it exits 0.
    const done = await api.finished(long, 40_000);
    expect(done, JSON.stringify(done)).toMatchObject({ status: "succeeded", attempt: 1, status_code: 200 });
    expect(seen.get("drain-long")).toBe(1);
    expect((await exit).code).toBe(0);
    await mesh.start("invoker", holder);
  }, 120_000);

  it("leases are per invoker and live in Postgres: kill -9 of the scheduler and a restart leave a held call running, called once", async () => {
    const id = (await api.call("POST", "/dev/work/held?async=true&tag=restart&held=1", "x")).json.run_id as string;
    await running(id, "held call running");
    await mesh.kill("scheduler", 0, "SIGKILL");
    await mesh.start("scheduler", 0);
    // Past two leases: the restarted scheduler finds the invoker's session renewed by its heartbeats.
    await new Promise((r) => setTimeout(r, 2 * LEASE_SECONDS * 1000));
    const during = (await api.getRun(id)).json;
    expect(during, JSON.stringify(during)).toMatchObject({ status: "running", attempt: 1 });
    releases.get("restart")!();
    const run = await api.finished(id, 30_000);
    expect(run).toMatchObject({ status: "succeeded", attempt: 1 });
    expect(seen.get("restart")).toBe(1);
  }, 120_000);
});
