#!/usr/bin/env node
// `npm run bench:held [-- --n 1000,4000,16000]`: one real invoker
// process holding N calls at once, and a bare undici client holding the same
// N as the floor. Prints, for each N: RSS and heap per held call, event-loop
// delay p99, and the latency of new work while holding (for Longhaul: accept,
// POST ?async=true → 202 through the ingress; for the floor: a quick call).
// Not part of `npm test`. See tests/bench/held/README.md.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { Agent } from "undici";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { ensureDeps } from "../../../scripts/lib/deps.mjs";
import { startMesh } from "../../../scripts/lib/mesh.mjs";
import { forkChild, loadavg, median, openLoop, pool, rssOf, scrape, sleep, until, fdsOf } from "./lib.mjs";
import { printResults } from "./report.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    n: { type: "string", default: "1000,4000,16000" },
    apps: { type: "string", default: "4" },
    probes: { type: "string", default: "200" },
    rate: { type: "string", default: "40" },
    "window-seconds": { type: "string", default: "15" },
    "step-timeout": { type: "string", default: "300" },
    json: { type: "string", default: path.join(here, "results", "latest.json") },
    "no-floor": { type: "boolean", default: false },
    "keep-logs": { type: "boolean", default: false },
  },
});
const steps = [...new Set(args.n.split(",").map(Number))].sort((a, b) => a - b);
if (steps.some((n) => !Number.isInteger(n) || n < 1 || n > 16_000)) fail("--n: integers in [1, 16000], comma separated");
const appCount = Number(args.apps);
const probes = Number(args.probes);
const rate = Number(args.rate);
const windowMs = Number(args["window-seconds"]) * 1000;
const stepTimeoutMs = Number(args["step-timeout"]) * 1000;
const maxN = steps.at(-1);
const SUBMIT_CONCURRENCY = 32;
const SETTLE_MS = 5_000;
const DRAIN_WAIT_MS = 120_000;
/** Long enough for several heartbeats at the default lease (15 s: one beat every 5 s). */
const PG_WINDOW_MS = 20_000;

const t0 = Date.now();
const log = (m) => console.error(`[bench:held ${((Date.now() - t0) / 1000).toFixed(0)}s] ${m}`);
const cleanups = [];
process.on("SIGINT", () => process.exit(130)); // the exit hooks of mesh.mjs / deps.mjs stop the children
const results = { started: new Date().toISOString(), machine: machine(), settings: { ...args, steps }, longhaul: [], floor: [] };

try {
  await main();
} catch (err) {
  log(`failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exitCode = 1;
} finally {
  for (const c of cleanups.reverse()) await c().catch((err) => log(`cleanup: ${err.message}`));
}

async function main() {
  log(`steps ${steps.join(", ")}; ${appCount} app processes; load average ${loadavg()}`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "longhaul-held-"));
  fs.chmodSync(dataDir, 0o755);
  cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
  const deps = await ensureDeps({ dataDir, log, fast: true, handleSignals: false });
  cleanups.push(() => deps.stop());

  const apps = [];
  for (let i = 0; i < appCount; i++) apps.push(await forkChild(path.join(here, "app.mjs"), "listening"));
  cleanups.push(() => Promise.all(apps.map((a) => a.stop())));
  const appUrls = apps.map((a) => `http://127.0.0.1:${a.first.port}`);
  const appCounts = async () => {
    const cs = await Promise.all(apps.map((a) => a.ask({ cmd: "count" }, "count")));
    return { held: sum(cs.map((c) => c.held)), closedEarly: sum(cs.map((c) => c.closedEarly)), quick: sum(cs.map((c) => c.quick)) };
  };
  const releaseAll = () => Promise.all(apps.map((a) => a.ask({ cmd: "release" }, "released")));

  await measureLonghaul(deps, appUrls, appCounts, releaseAll);
  if (!args["no-floor"]) await measureFloor(appUrls, appCounts, releaseAll);

  results.finished = new Date().toISOString();
  results.loadAfter = loadavg();
  printResults(results);
  fs.mkdirSync(path.dirname(args.json), { recursive: true });
  fs.writeFileSync(args.json, JSON.stringify(results, null, 2) + "\n");
  log(`JSON in ${path.relative(process.cwd(), args.json)}`);
}

async function measureLonghaul(deps, appUrls, appCounts, releaseAll) {
  const dbName = `bench_held_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: deps.databaseUrl });
  admin.on("error", () => {});
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  const dbUrl = new URL(deps.databaseUrl);
  dbUrl.pathname = `/${dbName}`;
  const prefix = `held_${randomBytes(4).toString("hex")}`;
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "longhaul-held-logs-"));
  let keepLogs = args["keep-logs"];
  const local = [];
  try {
    // Production wiring: built dist under otel-register, defaults but the in-flight limit.
    // No notifier: no run here has a webhook.
    const mesh = await startMesh({
      databaseUrl: dbUrl.toString(),
      natsUrl: deps.natsUrl,
      natsPrefix: prefix,
      logDir,
      readyTimeoutMs: 120_000,
      services: { notifier: 0 },
      serviceEnv: { invoker: { INVOKER_MAX_IN_FLIGHT: String(maxN + probes + 1000) } },
    });
    local.push(() => mesh.stop());
    const invoker = mesh.processes.find((p) => p.name === "invoker");
    const metricsUrl = mesh.metricsUrls.invoker[0];
    const db = new pg.Client({ connectionString: dbUrl.toString() });
    db.on("error", () => {});
    await db.connect();
    local.push(() => db.end());
    const byStatus = async () =>
      Object.fromEntries((await db.query("select status, count(*)::int as n from runs group by status")).rows.map((r) => [r.status, r.n]));

    const agent = new Agent({ connections: 64 });
    local.push(() => agent.close());
    const headers = { authorization: `Bearer ${mesh.apiKey}`, "content-type": "application/json" };
    for (let k = 0; k < appUrls.length; k++) {
      const r = await fetch(`${mesh.ingressUrl}/v1/apps/held-${k}`, { method: "PUT", headers, body: JSON.stringify({ url: appUrls[k] }) });
      if (r.status !== 200 && r.status !== 201) throw new Error(`PUT /v1/apps/held-${k}: ${r.status} ${await r.text()}`);
    }
    let submitFailures = 0;
    const submit = async (i, kind) => {
      const res = await agent.request({
        origin: mesh.ingressUrl,
        path: `/dev/held-${i % appUrls.length}/${kind}/${i}?async=true`,
        method: "POST",
        headers,
        body: '{"prompt":"hold me"}',
      });
      await res.body.text();
      if (res.statusCode !== 202) submitFailures += 1;
      return res.statusCode === 202;
    };

    // Warm-up: code compiled, pools and connections made, before the baseline.
    await openLoop(100, 50, (i) => submit(i, "quick"));
    await until(async () => ({ done: ((await byStatus()).succeeded ?? 0) >= 100 }), 60_000);
    await sleep(SETTLE_MS);
    const base = await sampleInvoker(invoker.pid, metricsUrl, 5);
    // Postgres' own counters over a quiet window (no submits): what the mesh
    // costs it at rest, and then while holding N calls (heartbeats).
    const pgRate = async () => {
      // Other backends publish their counters at most once a second; the window is long enough for that.
      const read = async () => ({
        ...(await db.query("select xact_commit::float8 as c, tup_updated::float8 as u from pg_stat_database where datname = current_database()")).rows[0],
        tables: Object.fromEntries(
          (await db.query("select relname, (n_tup_upd + n_tup_ins + n_tup_del)::float8 as w from pg_stat_user_tables")).rows.map((r) => [r.relname, r.w]),
        ),
      });
      const a = await read();
      const t = Date.now();
      await sleep(PG_WINDOW_MS);
      const b = await read();
      const s = (Date.now() - t) / 1000;
      // Rows written per second by table: where the commits go.
      const byTable = Object.fromEntries(
        Object.entries(b.tables)
          .map(([name, w]) => [name, (w - (a.tables[name] ?? 0)) / s])
          .filter(([, r]) => r > 0),
      );
      return { commitsPerSecond: (b.c - a.c) / s, rowsUpdatedPerSecond: (b.u - a.u) / s, rowsWrittenByTable: byTable };
    };
    base.pg = await pgRate();
    results.longhaulBase = base;
    log(`invoker baseline: RSS ${(base.rss / 2 ** 20).toFixed(0)} MB, heap ${(base.heapUsed / 2 ** 20).toFixed(0)} MB`);

    let current = 0;
    let quickSent = 0;
    for (const n of steps) {
      const stepStart = Date.now();
      const need = n - current;
      const submitting = pool(need, SUBMIT_CONCURRENCY, (i) => submit(current + i, "hold")).then(() => Date.now() - stepStart);
      const filled = await until(async () => {
        const c = await appCounts();
        return { done: c.held >= n, held: c.held };
      }, stepTimeoutMs);
      const submitMs = await submitting;
      const fillMs = Date.now() - stepStart;
      current = n;
      log(`N=${n}: ${filled.held} held after ${(fillMs / 1000).toFixed(1)} s (submits took ${(submitMs / 1000).toFixed(1)} s); load ${loadavg()}`);
      await sleep(SETTLE_MS);
      const pgHeld = await pgRate();
      log(
        `N=${n}: Postgres ${pgHeld.commitsPerSecond.toFixed(1)} commits/s, ${pgHeld.rowsUpdatedPerSecond.toFixed(1)} rows updated/s ` +
          `(at rest ${base.pg.commitsPerSecond.toFixed(1)}, ${base.pg.rowsUpdatedPerSecond.toFixed(1)}); rows written/s by table ${JSON.stringify(pgHeld.rowsWrittenByTable)}`,
      );
      const m = await measureWindow({
        sample: () => rssOf(invoker.pid),
        start: () => scrape(metricsUrl),
        probe: (i) => submit(quickSent + i, "quick"),
        finish: async () => {
          const s = await scrape(metricsUrl);
          return { heapUsed: s.nodejs_heap_size_used_bytes, eldP99Ms: s.nodejs_eventloop_lag_p99_seconds * 1000 };
        },
      });
      quickSent += probes;
      const row = { n, held: filled.held, fillMs, submitMs, ...m, pg: pgHeld, fds: fdsOf(invoker.pid), load: loadavg(), base };
      results.longhaul.push(row);
      logRow("invoker", row);
    }

    const beforeRelease = await byStatus();
    const releasedAt = Date.now();
    await releaseAll();
    // Bounded: on a busy machine 16,000 CompleteRuns take a while; the figure is how many got through.
    const drained = await until(async () => {
      const s = await byStatus();
      return { done: !s.running && !s.dispatched && !s.queued, s };
    }, DRAIN_WAIT_MS, 1000);
    const runsRecorded = (drained.s.succeeded ?? 0) - (beforeRelease.succeeded ?? 0);
    results.longhaulDrain = {
      ms: Date.now() - releasedAt,
      statuses: drained.s,
      recordedPerSecond: runsRecorded / ((Date.now() - releasedAt) / 1000),
      submitFailures,
      closedEarly: (await appCounts()).closedEarly,
    };
    log(`released: all ${JSON.stringify(drained.s)} after ${((Date.now() - releasedAt) / 1000).toFixed(1)} s; submit failures ${submitFailures}`);
    if (!drained.done || drained.s.failed || submitFailures || results.longhaulDrain.closedEarly) keepLogs = true;
  } finally {
    for (const c of local.reverse()) await c().catch((err) => log(`cleanup: ${err.message}`));
    await admin.query(`drop database if exists ${dbName} with (force)`).catch(() => {});
    await admin.end();
    await deleteStreams(deps.natsUrl, prefix).catch(() => {});
    if (keepLogs) log(`service logs kept in ${logDir}`);
    else fs.rmSync(logDir, { recursive: true, force: true });
  }
}

async function measureFloor(appUrls, appCounts, releaseAll) {
  const floor = await forkChild(path.join(here, "floor.mjs"), "ready");
  try {
    await floor.ask({ cmd: "warmup", targets: appUrls }, "warm");
    await sleep(SETTLE_MS);
    const samples = [];
    for (let i = 0; i < 5; i++) {
      samples.push(await floor.ask({ cmd: "sample" }, "sample"));
      await sleep(1000);
    }
    const base = { rss: median(samples.map((s) => s.rss)), heapUsed: samples.at(-1).heapUsed };
    results.floorBase = base;
    let current = 0;
    for (const n of steps) {
      const stepStart = Date.now();
      await floor.ask({ cmd: "hold", n: n - current, targets: appUrls }, "holding");
      const filled = await until(async () => {
        const c = await appCounts();
        return { done: c.held >= n, held: c.held };
      }, stepTimeoutMs);
      const fillMs = Date.now() - stepStart;
      current = n;
      await sleep(SETTLE_MS);
      const m = await floor.ask({ cmd: "measure", probes, rate, windowMs, targets: appUrls }, "measured");
      const row = {
        n,
        held: filled.held,
        fillMs,
        rss: median(m.rssSamples),
        rssMax: Math.max(...m.rssSamples),
        heapUsed: m.heapUsed,
        eldP99Ms: m.eldP99Ms,
        probe: summarize(m.probeMs),
        fds: fdsOf(floor.pid),
        load: loadavg(),
        base,
      };
      results.floor.push(row);
      logRow("floor", row);
    }
    await releaseAll();
    const done = await floor.ask({ cmd: "wait" }, "done");
    results.floorDrain = done;
  } finally {
    await floor.stop();
  }
}

/**
 * One measuring window while N are held: RSS sampled every second, `probes`
 * new submits at `rate`/s (open loop), the rest of the window idle but for
 * heartbeats. The event-loop histogram behind prom-client's p99 is reset at
 * each scrape, so the scrape at `start` opens the window and the one at
 * `finish` reads it.
 */
async function measureWindow({ sample, start, probe, finish }) {
  const opened = await start();
  const began = Date.now();
  const rss = [];
  const sampler = setInterval(() => rss.push(sample()), 1000);
  const probeMs = await openLoop(probes, rate, probe);
  const rest = windowMs - (Date.now() - began);
  if (rest > 0) await sleep(rest);
  clearInterval(sampler);
  const end = await finish();
  // heapUsed counts garbage not yet collected: of the two readings, the lower is nearer the live heap.
  const heapUsed = Math.min(end.heapUsed, opened?.nodejs_heap_size_used_bytes ?? Infinity);
  return { rss: median(rss), rssMax: Math.max(...rss), ...end, heapUsed, probe: summarize(probeMs) };
}

async function sampleInvoker(pid, metricsUrl, count) {
  const rss = [];
  for (let i = 0; i < count; i++) {
    rss.push(rssOf(pid));
    await sleep(1000);
  }
  const s = await scrape(metricsUrl);
  return { rss: median(rss), heapUsed: s.nodejs_heap_size_used_bytes };
}

function summarize(ms) {
  const failed = ms.filter((v) => Number.isNaN(v)).length;
  const okMs = ms.filter((v) => !Number.isNaN(v));
  const p = (q) => {
    const s = Float64Array.from(ms, (v) => (Number.isNaN(v) ? Infinity : v)).sort();
    return s[Math.min(s.length - 1, Math.max(0, Math.ceil((q / 100) * s.length) - 1))];
  };
  return { n: ms.length, failed, p50: p(50), p99: p(99), max: okMs.length ? Math.max(...okMs) : NaN };
}

function logRow(who, r) {
  log(
    `${who} N=${r.n}: RSS/call ${((r.rss - r.base.rss) / r.n / 1024).toFixed(1)} KB, heap/call ${((r.heapUsed - r.base.heapUsed) / r.n / 1024).toFixed(1)} KB, ` +
      `ELD p99 ${r.eldP99Ms.toFixed(1)} ms, new work p50/p99 ${r.probe.p50.toFixed(1)}/${r.probe.p99.toFixed(1)} ms (${r.probe.failed} failed), fds ${r.fds}`,
  );
}

async function deleteStreams(natsUrl, prefix) {
  const nc = await connect({ servers: natsUrl.split(",") });
  try {
    const jsm = await jetstreamManager(nc);
    for (const s of ["DISPATCH", "EVENTS"]) await jsm.streams.delete(`${prefix.toUpperCase()}_${s}`).catch(() => false);
  } finally {
    await nc.close();
  }
}

function machine() {
  return { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGb: Math.round(os.totalmem() / 2 ** 30), node: process.version, loadBefore: loadavg() };
}

function sum(xs) {
  return xs.reduce((a, b) => a + b, 0);
}

function fail(message) {
  console.error(`bench:held: ${message}`);
  process.exit(2);
}
