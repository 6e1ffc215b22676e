// Watchers of one run share their work: fifty of them (`?wait=` long polls,
// `GET /v1/runs/{id}/events` streams, RunService/WatchRun streams and
// project feeds `GET /v1/events?run=`) cost the scheduler's Postgres about
// what one costs. The run is driven through
// queued → dispatched → running → succeeded while they watch, and the reads
// are counted twice: by the scheduler's own `longhaul_watch_reads_total`,
// and by Postgres's scan counters of the runs and run_attempts tables of
// this file's database (pg_stat_user_tables).
import { Metadata, type ClientReadableStream } from "@grpc/grpc-js";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@longhaul/shared/grpc";
import { runsPb } from "@longhaul/shared/proto";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";
import { readSse } from "../services/client/src/sse.js";

let mesh: TestMesh;
let app: Peer;
let api: ReturnType<typeof gateway>;
let db: pg.Client;
/** Calls the app holds until the test lets them go. */
const held = new Set<() => void>();
const closers: (() => void)[] = [];

beforeAll(async () => {
  app = await startPeer();
  app.handle(async (_req, res) => {
    await new Promise<void>((resolve) => held.add(resolve));
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("done");
  });
  mesh = await startTestMesh();
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  expect((await api.putApp("slow", { url: app.url })).status).toBe(201);
  db = new pg.Client({ connectionString: mesh.database.url });
  await db.connect();
});

afterAll(async () => {
  for (const close of closers.splice(0)) close();
  for (const release of held) release();
  await db?.end();
  await mesh?.cleanup();
  await app?.close();
});

/** A sample of the scheduler's /metrics with the label `label` (e.g. `watch="run"`), 0 when absent. */
async function schedulerMetric(name: string, label = ""): Promise<number> {
  const text = await (await fetch(mesh.metricsUrls.scheduler[0]!)).text();
  const line = text.split("\n").find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(label));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
}

/** Index and sequential scans of the run tables so far, as Postgres counts them. */
async function runTableScans(): Promise<number> {
  // Backends report their counts when idle, at most once a second: wait for the last ones.
  await new Promise((r) => setTimeout(r, 2_500));
  const { rows } = await db.query<{ n: string }>(
    `select coalesce(sum(coalesce(idx_scan, 0) + coalesce(seq_scan, 0)), 0)::text as n
       from pg_stat_user_tables where schemaname = 'public' and relname in ('runs', 'run_attempts')`,
  );
  return Number(rows[0]!.n);
}

type Kind = "wait" | "sse" | "grpc" | "feed";

interface Watcher {
  kind: Kind;
  /** Statuses seen, in order (a long poll: its one answer); a failure as `error:<code>`. */
  seen: string[];
  /** Resolves when the watcher is done (stream ended, poll answered). */
  done: Promise<void>;
}

function openLongPoll(runId: string, key = mesh.apiKey): Watcher {
  const w: Watcher = { kind: "wait", seen: [], done: Promise.resolve() };
  w.done = gateway(mesh.ingressUrl, key)
    .getRun(runId, 60)
    .then((r) => {
      w.seen.push(r.status === 200 ? (r.json.status as string) : `error:${r.json?.error?.code as string}`);
    });
  return w;
}

/**
 * A server-sent event stream: the run's own (`/v1/runs/{id}/events`, ends
 * when the run does) or the project's feed naming the run (`/v1/events?run=`,
 * closed here once the run has succeeded).
 */
function openSse(runId: string, kind: "sse" | "feed" = "sse", key = mesh.apiKey): Watcher {
  const ac = new AbortController();
  closers.push(() => ac.abort());
  const w: Watcher = { kind, seen: [], done: Promise.resolve() };
  const path = kind === "sse" ? `/v1/runs/${runId}/events` : `/v1/events?run=${runId}`;
  const reading = (async () => {
    const res = await fetch(`${mesh.ingressUrl}${path}`, { headers: { authorization: `Bearer ${key}` }, signal: ac.signal });
    expect(res.status).toBe(200);
    for await (const { event, data } of readSse(res.body!, () => undefined)) {
      if (event === "run" && data) w.seen.push((JSON.parse(data) as { status: string }).status);
      if (event === "error" && data) w.seen.push(`error:${(JSON.parse(data) as { error: { code: string } }).error.code}`);
      if (kind === "feed" && w.seen.at(-1) === "succeeded") ac.abort();
    }
  })();
  // Closed by the test's end (abort) only when something failed earlier.
  w.done = reading.catch((err: unknown) => {
    if (!ac.signal.aborted) throw err;
  });
  void w.done.catch(() => undefined);
  return w;
}

/** `RUN_STATUS_RUNNING` → `running`, as the HTTP API names it. */
const statusName = (s: runsPb.RunStatus) => runsPb.runStatusToJSON(s).replace(/^RUN_STATUS_/, "").toLowerCase();

function openWatchRun(runId: string, key = mesh.apiKey): Watcher {
  const client = createClient(runsPb.RunServiceClient, mesh.addresses.scheduler);
  const md = new Metadata();
  md.set("authorization", `Bearer ${key}`);
  const call: ClientReadableStream<runsPb.WatchRunResponse> = client.watchRun({ runId }, md, { deadline: Date.now() + 120_000 });
  closers.push(() => {
    call.cancel();
    client.close();
  });
  const w: Watcher = { kind: "grpc", seen: [], done: Promise.resolve() };
  w.done = new Promise<void>((resolve) => {
    call.on("data", (m: runsPb.WatchRunResponse) => w.seen.push(statusName(m.run!.status)));
    call.on("error", (err: Error & { code?: number }) => {
      w.seen.push(`error:${err.code === 16 ? "unauthenticated" : String(err.code)}`);
      resolve();
    });
    call.on("end", () => resolve());
  }).finally(() => client.close());
  return w;
}

/**
 * Opens `n` watchers of a fresh run (long polls, SSE and WatchRun in turn),
 * drives it through its states with a quiet spell while it runs, and counts
 * the reads made meanwhile.
 */
async function measure(n: number): Promise<{ reads: number; projectReads: number; scans: number; watchers: Watcher[] }> {
  expect((await api.call("POST", "/v1/apps/slow/pause")).status).toBe(200);
  const submitted = await api.call("POST", "/dev/slow/work?async=true", "{}");
  expect(submitted.status, submitted.text).toBe(202);
  const runId = submitted.json.run_id as string;

  const kinds: Kind[] = ["sse", "grpc", "wait", "feed"];
  const watchers = Array.from({ length: n }, (_, i) => {
    const kind = kinds[i % kinds.length]!;
    return kind === "wait" ? openLongPoll(runId) : kind === "grpc" ? openWatchRun(runId) : openSse(runId, kind);
  });
  const feeds = watchers.filter((w) => w.kind === "feed").length;
  // Every watcher is in the scheduler, and every stream has its first state.
  await eventually(async () => (await schedulerMetric("longhaul_run_watchers")) === n - feeds, 20_000, `${n - feeds} run watchers in the scheduler`);
  await eventually(async () => (await schedulerMetric("longhaul_project_watchers")) === feeds, 20_000, `${feeds} project feeds in the scheduler`);
  await eventually(async () => watchers.every((w) => w.kind === "wait" || w.seen.length > 0), 20_000, "first states");

  const reads0 = await schedulerMetric("longhaul_watch_reads_total", 'watch="run"');
  const projectReads0 = await schedulerMetric("longhaul_watch_reads_total", 'watch="project"');
  const scans0 = await runTableScans();

  expect((await api.call("POST", "/v1/apps/slow/resume")).status).toBe(200);
  await eventually(async () => held.size > 0, 20_000, "the app to hold the call");
  await eventually(async () => watchers.every((w) => w.kind === "wait" || w.seen.includes("running")), 20_000, "every stream to see running");
  // A quiet spell while the app holds the call: only the run's safety reads.
  await new Promise((r) => setTimeout(r, 4_000));
  for (const release of held) release();
  held.clear();
  await Promise.all(watchers.map((w) => w.done));
  await eventually(async () => (await schedulerMetric("longhaul_run_watchers")) === 0, 10_000, "the watchers to leave");

  const reads = (await schedulerMetric("longhaul_watch_reads_total", 'watch="run"')) - reads0;
  const projectReads = (await schedulerMetric("longhaul_watch_reads_total", 'watch="project"')) - projectReads0;
  const scans = (await runTableScans()) - scans0;
  for (const w of watchers) {
    expect(w.seen.at(-1), `${w.kind} watcher's last state`).toBe("succeeded");
    if (w.kind !== "wait") {
      expect(w.seen[0], `${w.kind} watcher's first state`).toBe("queued");
      expect(w.seen, `${w.kind} watcher saw the run running`).toContain("running");
    }
  }
  return { reads, projectReads, scans, watchers };
}

describe("watchers of one run", () => {
  it("cost Postgres the same reads per change with 50 watchers as with 1", { timeout: 120_000 }, async () => {
    const one = await measure(1);
    const fifty = await measure(50);
    console.log(
      `watch reads of one run (3 changes and a 4-s quiet spell): 1 watcher ${one.reads} reads (${one.scans} scans of runs/run_attempts); ` +
        `50 watchers (13 SSE, 13 WatchRun, 12 ?wait=, 12 project feeds) ${fifty.reads} reads of the run and ${fifty.projectReads} of the project (${fifty.scans} scans)`,
    );
    // Three changes (dispatched, running, succeeded), each one read and perhaps one
    // more when notices come during a read; a safety read per 2 s of quiet.
    for (const m of [one, fifty]) {
      expect(m.reads).toBeGreaterThanOrEqual(3);
      expect(m.reads).toBeLessThanOrEqual(10);
    }
    expect(fifty.reads).toBeLessThanOrEqual(one.reads + 3);
    // Twelve project feeds: their changed runs read once per 150-ms window, not once per feed.
    expect(fifty.projectReads).toBeGreaterThanOrEqual(1);
    expect(fifty.projectReads).toBeLessThanOrEqual(6);
    // Postgres agrees: a read per watcher per change (or per 2 s) is ~500 scans more (seen when
    // each watcher had its own); the scheduler's own periodic work moves the count by a few dozen.
    expect(fifty.scans).toBeLessThanOrEqual(one.scans + 120);
  });

  it("ends the watchers of a revoked key within 5 s while the run's other watchers go on", { timeout: 60_000 }, async () => {
    const operator = gateway(mesh.ingressUrl, mesh.adminKey);
    const created = await operator.call("POST", "/v1/admin/projects/dev/keys", { name: "doomed", scopes: ["read"] });
    expect(created.status, created.text).toBe(201);
    const doomedKey = created.json.key as string;
    const submitted = await api.call("POST", "/dev/slow/work?async=true", "{}");
    expect(submitted.status, submitted.text).toBe(202);
    const runId = submitted.json.run_id as string;
    await eventually(async () => held.size > 0, 20_000, "the app to hold the call");

    const open = (key: string) => [openSse(runId, "sse", key), openWatchRun(runId, key), openLongPoll(runId, key)];
    const doomed = open(doomedKey);
    const kept = open(mesh.apiKey);
    await eventually(async () => (await schedulerMetric("longhaul_run_watchers")) === 6, 20_000, "six watchers of one run");
    await eventually(async () => [...doomed, ...kept].every((w) => w.kind === "wait" || w.seen.includes("running")), 20_000, "first states");
    expect(await schedulerMetric("longhaul_watched_runs")).toBe(1);

    const revokedAt = Date.now();
    expect((await operator.call("DELETE", `/v1/admin/keys/${created.json.id as string}`)).status).toBe(204);
    await Promise.all(doomed.map((w) => w.done));
    const tookMs = Date.now() - revokedAt;
    console.log(`watchers of a revoked key ended ${tookMs} ms after the revocation`);
    expect(tookMs).toBeLessThan(5_000);
    for (const w of doomed) expect(w.seen.at(-1), `${w.kind} watcher of the revoked key`).toBe("error:unauthenticated");
    // The shared watch of the run goes on for the others.
    expect(await schedulerMetric("longhaul_run_watchers")).toBe(3);
    for (const release of held) release();
    held.clear();
    await Promise.all(kept.map((w) => w.done));
    for (const w of kept) expect(w.seen.at(-1), `${w.kind} watcher of the kept key`).toBe("succeeded");
  });
});
