// A scheduler copy stopped (SIGTERM) while invokers' Attempts streams, the
// gateway's watches (`GET /v1/runs/{id}/events`, over RunService/WatchRun)
// and a direct WatchRun are open on it ends each of those streams itself,
// with UNAVAILABLE, instead of holding its gRPC server's stop for the whole
// grace (10 s); outcomes sent to it meanwhile are recorded once (on it or,
// refused there, on the other copy), and the gateway's watches go on on the
// other copy without an error frame.
import { Metadata, status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@longhaul/shared/grpc";
import { runsPb } from "@longhaul/shared/proto";
import { readSse } from "../services/client/src/sse.js";
import { meshGauge, startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let api: ReturnType<typeof gateway>;
/** Calls the app holds until the test lets them go. */
const held: (() => void)[] = [];
const closers: (() => void)[] = [];

beforeAll(async () => {
  app = await startPeer();
  app.handle(async (_req, res) => {
    await new Promise<void>((resolve) => held.push(resolve));
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("done");
  });
  mesh = await startTestMesh({ services: { scheduler: 2 } });
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  expect((await api.putApp("hold", { url: app.url })).status).toBe(201);
});

afterAll(async () => {
  for (const close of closers.splice(0)) close();
  for (const release of held.splice(0)) release();
  await mesh?.cleanup();
  await app?.close();
});

/** `longhaul_run_watchers` of scheduler copy `index` (WatchRun streams and long polls open on it). */
const runWatchers = (index: number) => meshGauge(mesh, "scheduler", index, "longhaul_run_watchers");

interface SseWatch {
  /** `event: run` statuses and `error:<code>` frames, in order. */
  seen: string[];
  /** Resolves when the stream ended. */
  done: Promise<void>;
}

/** `GET /v1/runs/{id}/events`, its frames collected. */
function openSse(runId: string): SseWatch {
  const ac = new AbortController();
  closers.push(() => ac.abort());
  const w: SseWatch = { seen: [], done: Promise.resolve() };
  w.done = (async () => {
    const res = await fetch(`${mesh.ingressUrl}/v1/runs/${runId}/events`, { headers: { authorization: `Bearer ${mesh.apiKey}` }, signal: ac.signal });
    expect(res.status).toBe(200);
    for await (const { event, data } of readSse(res.body!, () => undefined)) {
      if (event === "run" && data) w.seen.push((JSON.parse(data) as { status: string }).status);
      if (event === "error" && data) w.seen.push(`error:${(JSON.parse(data) as { error: { code: string } }).error.code}`);
    }
  })().catch((err: unknown) => {
    if (!ac.signal.aborted) throw err;
  });
  void w.done.catch(() => undefined);
  return w;
}

describe("scheduler shutdown", () => {
  it("a scheduler with an invoker connected and watches open exits well before its gRPC grace: its streams end UNAVAILABLE, outcomes sent meanwhile are recorded once, the gateway's watches go on elsewhere", async () => {
    // Runs whose calls the app holds: the invoker holds them, and reports each outcome once let go.
    const runIds: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await api.call("POST", `/dev/hold/${i}?async=true`, "x");
      expect(r.status).toBe(202);
      runIds.push(r.json.run_id as string);
    }
    await app.waitFor(runIds.length);
    await eventually(async () => {
      for (const id of runIds) if ((await api.getRun(id)).json?.status !== "running") return false;
      return true;
    }, 20_000, "every run running");

    // A WatchRun straight to copy 0, and the gateway's watches (spread over both copies) until copy 0 has one of them too.
    const port0 = mesh.processes.find((p) => p.name === "scheduler" && p.index === 0)!.ports.SCHEDULER_GRPC_PORT;
    const direct = createClient(runsPb.RunServiceClient, `127.0.0.1:${port0}`);
    closers.push(() => direct.close());
    const md = new Metadata();
    md.set("authorization", `Bearer ${mesh.apiKey}`);
    const call = direct.watchRun({ runId: runIds[0]! }, md, { deadline: Date.now() + 120_000 });
    closers.push(() => call.cancel());
    const directEnded = new Promise<{ err: ServiceError; at: number }>((resolve) => {
      call.on("data", () => undefined);
      call.on("error", (err: ServiceError) => resolve({ err, at: Date.now() }));
    });
    await eventually(async () => (await runWatchers(0)) >= 1, 10_000, "the direct watch on copy 0");
    const sse: SseWatch[] = [];
    for (let i = 0; (await runWatchers(0)) < 2; i++) {
      expect(i, "a gateway watch on copy 0").toBeLessThan(20);
      sse.push(openSse(runIds[i % runIds.length]!));
      await eventually(async () => (await runWatchers(0)) + (await runWatchers(1)) >= sse.length + 1, 10_000, "the watch open");
    }

    const stoppedAt = Date.now();
    // A grace far beyond the gRPC stop's: the exit time measured is the scheduler's own.
    const exited = mesh.kill("scheduler", 0, "SIGTERM", 30_000);
    // The outcomes are sent while it shuts down.
    for (const release of held.splice(0)) release();
    const exit = await exited;
    const exitedAt = Date.now();
    const seconds = (exitedAt - stoppedAt) / 1000;
    console.log(`scheduler exited ${seconds.toFixed(2)} s after SIGTERM`);
    expect(exit.code).toBe(0);
    // The failure mode is the gRPC stop's whole grace (10 s).
    expect(seconds).toBeLessThan(8);

    // The direct watch was ended by the scheduler itself, as going away, before it exited.
    const { err, at } = await directEnded;
    expect(err.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(err.details).toMatch(/shutting down/);
    expect(at).toBeLessThanOrEqual(exitedAt);
    const logs = mesh.logs("scheduler", 0);
    expect(logs).toMatch(/"msg":"Attempts streams drained"/);
    expect(logs).not.toMatch(/not drained in time/);

    // Each run finished once: one attempt, one call of the app, succeeded.
    for (const id of runIds) expect((await api.finished(id)).status, id).toBe("succeeded");
    const db = new pg.Client({ connectionString: mesh.database.url });
    await db.connect();
    try {
      const { rows } = await db.query<{ run_id: string; n: string; finished: string }>(
        "select run_id::text, count(*)::text as n, count(finished_at)::text as finished from run_attempts where run_id = any($1::uuid[]) group by run_id",
        [runIds],
      );
      expect(rows.map((r) => [r.run_id, r.n, r.finished]).sort()).toEqual(runIds.map((id) => [id, "1", "1"]).sort());
    } finally {
      await db.end();
    }
    const calls = runIds.map((id) => app.received.filter((r) => r.headers["x-longhaul-run-id"] === id).length);
    expect(calls).toEqual(runIds.map(() => 1));

    // The gateway's watches went on on the other copy: each saw its run succeed, none an error frame.
    await Promise.all(sse.map((w) => w.done));
    for (const w of sse) {
      expect(w.seen.filter((s) => s.startsWith("error:"))).toEqual([]);
      expect(w.seen.at(-1)).toBe("succeeded");
    }
  });
});
