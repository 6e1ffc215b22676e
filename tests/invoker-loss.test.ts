// Losing the invoker that holds a call. Two invokers share the work; the one
// holding a run is killed (or paused past its lease), and the run must end by
// policy within a bounded time: never stuck in `running`, never with two
// outcomes, and never sent again to an app not declared idempotent (the
// killed invoker had already sent it).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

const LEASE_SECONDS = 3;
let mesh: TestMesh;
let app: Peer;
let api: ReturnType<typeof gateway>;
/** Calls the app sees, by tag; each is answered when the test says so. */
const releases = new Map<string, (() => void)[]>();

beforeAll(async () => {
  app = await startPeer();
  app.handle(async (req, res, raw) => {
    const tag = new URL(req.url, "http://x").searchParams.get("tag") ?? "";
    await new Promise<void>((resolve) => {
      releases.set(tag, [...(releases.get(tag) ?? []), resolve]);
      raw.socket.once("close", () => resolve());
    });
    if (!raw.socket.destroyed) res.end(`answer for ${tag}`);
  });
  mesh = await startTestMesh({
    services: { invoker: 2 },
    env: { SCHEDULER_LEASE_SECONDS: String(LEASE_SECONDS), SCHEDULER_TICK_MS: "200", INVOKER_DRAIN_SECONDS: "1" },
  });
  api = gateway(mesh.ingressUrl, mesh.apiKey);
});

afterAll(async () => {
  for (const rs of releases.values()) for (const r of rs) r();
  await mesh?.cleanup();
  await app?.close();
});

/** The mesh index of the invoker process whose id (`host-pid-rand`) holds the run's attempt. */
function invokerIndexOf(invokerId: string): number {
  const p = mesh.processes.find((x) => x.name === "invoker" && x.pid !== undefined && invokerId.includes(`-${x.pid}-`));
  if (!p) throw new Error(`no invoker process for ${invokerId}`);
  return p.index;
}

async function submitHeld(appName: string, tag: string): Promise<{ id: string; invoker: number }> {
  const calls = releases.get(tag)?.length ?? 0;
  const r = await api.call("POST", `/dev/${appName}/work?async=true&tag=${tag}`, "x");
  expect(r.status).toBe(202);
  const id = r.json.run_id as string;
  // A run handed to an invoker at submit is `running` from its commit on,
  // before its call reaches the app: held means the app has the call.
  await eventually(async () => (releases.get(tag)?.length ?? 0) > calls, 15_000, `${tag} at the app`);
  const running = await eventually(async () => {
    const run = (await api.getRun(id)).json;
    return run?.status === "running" && run.attempts?.length ? run : undefined;
  }, 15_000, `${tag} running`);
  return { id, invoker: invokerIndexOf(running.attempts.at(-1).invoker_id) };
}

describe("invoker loss", () => {
  it("kill -9 of the invoker holding calls: a non-idempotent run fails `interrupted` after one call, an idempotent one is retried on the other invoker", async () => {
    await api.putApp("once", { url: app.url, retry: { max_attempts: 3, initial_backoff_seconds: 0.2 } });
    await api.putApp("twice", { url: app.url, retry: { max_attempts: 2, initial_backoff_seconds: 0.2, idempotent: true } });
    const once = await submitHeld("once", "kill-once");
    const twice = await submitHeld("twice", "kill-twice");
    // Kill the invoker holding `once`; if `twice` is elsewhere, kill that one too later.
    const killedAt = Date.now();
    await mesh.kill("invoker", once.invoker, "SIGKILL");
    if (twice.invoker !== once.invoker) {
      // Both runs must be held by the killed invoker for the retry to go to the survivor.
      await mesh.kill("invoker", twice.invoker, "SIGKILL");
      await mesh.start("invoker", once.invoker);
    }

    const failed = await api.finished(once.id, 30_000);
    expect(failed).toMatchObject({ status: "failed", error_code: "interrupted", attempt: 1 });
    expect(releases.get("kill-once")).toHaveLength(1); // the app saw it once, and only once
    // Noticed within the lease plus a few ticks, not minutes (the run's own finish time, not
    // the test's, which includes restarting invokers).
    expect(new Date(failed.finished_at).getTime() - killedAt).toBeLessThan((LEASE_SECONDS + 5) * 1000);

    // The retried run is taken by a live invoker: release its second call.
    await eventually(async () => (releases.get("kill-twice")?.length ?? 0) >= 2, 30_000, "second attempt of kill-twice");
    for (const r of releases.get("kill-twice") ?? []) r();
    const retried = await api.finished(twice.id, 30_000);
    expect(retried).toMatchObject({ status: "succeeded", attempt: 2 });
    expect(retried.attempts.map((a: { error_code: string | null }) => a.error_code)).toEqual(["interrupted", null]);

    // Bring the killed copy back for the next test.
    for (const p of mesh.processes) if (p.name === "invoker" && !p.alive) await mesh.start("invoker", p.index);
  });

  it("SIGSTOP past the lease then SIGCONT: the stale invoker's late result is refused, the run has one outcome", { timeout: 120_000 }, async () => {
    const tag = `pause-${Date.now()}`; // a try of its own, should the test be retried
    await api.putApp("paused", { url: app.url, retry: { max_attempts: 2, initial_backoff_seconds: 0.2, idempotent: true } });
    const held = await submitHeld("paused", tag);
    const paused = mesh.processes.find((p) => p.name === "invoker" && p.index === held.invoker)!;
    process.kill(paused.pid!, "SIGSTOP");
    try {
      // The lease runs out; attempt 2 goes to the other invoker.
      // Generous: a dispatch handed to the paused invoker waits out JetStream's ack wait (10 s) first.
      await eventually(async () => (releases.get(tag)?.length ?? 0) >= 2, 60_000, "second attempt while paused");
      const during = (await api.getRun(held.id)).json;
      expect(during).toMatchObject({ status: "running", attempt: 2 });
      expect(invokerIndexOf(during.attempts.at(-1).invoker_id)).not.toBe(held.invoker);
    } finally {
      process.kill(paused.pid!, "SIGCONT");
    }
    // The app answers both calls: the first (stale) one first.
    const [stale, fresh] = releases.get(tag)!;
    stale!();
    await new Promise((r) => setTimeout(r, 1500));
    let run = (await api.getRun(held.id)).json;
    expect(run).toMatchObject({ status: "running", attempt: 2 });
    fresh!();
    run = await api.finished(held.id, 20_000);
    expect(run).toMatchObject({ status: "succeeded", attempt: 2 });
    expect(run.attempts).toHaveLength(2);
    expect(run.attempts[0]).toMatchObject({ error_code: "interrupted" });
    // The resumed invoker logged that its result was refused or its lease lost.
    await eventually(async () => /lost|refused|stale|not accepted/i.test(mesh.logs("invoker", held.invoker)), 10_000, "stale result noticed");
  });

  it("SIGTERM drains: the held call is handed back and retried elsewhere, nothing left running", async () => {
    await api.putApp("drained", { url: app.url, retry: { max_attempts: 2, initial_backoff_seconds: 0.2, idempotent: true } });
    const held = await submitHeld("drained", "drain");
    const exit = await mesh.kill("invoker", held.invoker, "SIGTERM");
    expect(exit.code).toBe(0);
    await eventually(async () => (releases.get("drain")?.length ?? 0) >= 2, 30_000, "attempt 2 after drain");
    for (const r of releases.get("drain") ?? []) r();
    const run = await api.finished(held.id, 20_000);
    expect(run).toMatchObject({ status: "succeeded", attempt: 2 });
    await mesh.start("invoker", held.invoker);
  });
});
