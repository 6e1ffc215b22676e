#!/usr/bin/env node
// `npm run bench [-- --quick] [--only a,b] [--json FILE] [--app-delay-ms N]`:
// measures Longhaul, the builds a user would pick instead (pg-boss,
// graphile-worker) and the limits of the parts (bare HTTP, raw INSERT, raw
// JetStream) one after the other on this machine, then prints one table and
// writes the same as JSON (tests/bench/results/latest[-quick].json).
// Needs DATABASE_URL and NATS_URL (scripts/with-deps.mjs provides them) and a
// build (`npm run build`). Performance is measured here, never asserted.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { now } from "./lib/clock.mjs";
import { forkChild } from "./lib/ipc.mjs";
import { createPgAdmin } from "./lib/pg-admin.mjs";
import { MODES, measureLongCalls, measureSystem } from "./lib/phases.mjs";
import { natsServerPid, postmasterPid } from "./lib/proc-cpu.mjs";
import { renderReport, targets } from "./lib/report.mjs";
import { bareHttp, rawInsert, rawJetStream } from "./systems/limits.mjs";
import { longhaul, longhaulOtlp } from "./systems/longhaul.mjs";
import { graphile, pgboss } from "./systems/peers.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const SYSTEMS = [longhaul, longhaulOtlp, pgboss, graphile, bareHttp, rawInsert, rawJetStream];
/** Systems the long-call scenario runs on (the job systems, Longhaul without trace export). */
const LONG_CALL_SYSTEMS = new Set(["longhaul", "pgboss", "graphile"]);

const { values: opts } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    json: { type: "string" },
    "app-delay-ms": { type: "string", default: "0" },
    "long-calls": { type: "string" },
    "long-call-seconds": { type: "string" },
    "no-long-calls": { type: "boolean", default: false },
  },
});
const mode = opts.quick ? "quick" : "full";
const appDelayMs = Number(opts["app-delay-ms"]);
if (!Number.isInteger(appDelayMs) || appDelayMs < 0) {
  console.error("--app-delay-ms: a whole number of milliseconds");
  process.exit(2);
}
const cfg = structuredClone(MODES[mode]);
if (opts["long-calls"] !== undefined) cfg.longCalls.count = Number(opts["long-calls"]);
if (opts["long-call-seconds"] !== undefined) cfg.longCalls.holdMs = Number(opts["long-call-seconds"]) * 1000;
if (!(Number.isInteger(cfg.longCalls.count) && cfg.longCalls.count > 0 && cfg.longCalls.holdMs > 0)) {
  console.error("--long-calls: a whole number of runs > 0; --long-call-seconds: seconds > 0");
  process.exit(2);
}
// The OTLP row runs in full runs (and when --only names it): quick runs stay short for CI.
const selected = opts.only
  ? SYSTEMS.filter((s) => opts.only.split(",").includes(s.name))
  : SYSTEMS.filter((s) => !(opts.quick && s.name === "longhaul-otlp"));
if (selected.length === 0) {
  console.error(`--only: none of ${SYSTEMS.map((s) => s.name).join(", ")}`);
  process.exit(2);
}
const jsonPath = opts.json ?? path.join(here, "results", `latest${opts.quick ? "-quick" : ""}.json`);
const databaseUrl = process.env.DATABASE_URL;
const natsUrl = process.env.NATS_URL;
if (!databaseUrl || !natsUrl) {
  console.error("DATABASE_URL and NATS_URL must be set: run it as `npm run bench`");
  process.exit(2);
}

const started = now();
const log = (m) => console.error(`[bench +${((now() - started) / 1000).toFixed(1)}s] ${m}`);
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "longhaul-bench-"));
fs.chmodSync(logDir, 0o755);

function natsServerVersion() {
  try {
    return execFileSync("nats-server", ["--version"], { encoding: "utf8" }).trim().replace(/^nats-server: /, "");
  } catch {
    return "unknown";
  }
}

const pg = await createPgAdmin(databaseUrl);
const children = [];
let interrupted = false;
const cleanup = async () => {
  for (const c of children.splice(0)) await c.stop().catch(() => {});
  await pg.close().catch(() => {});
};
// Ctrl-C: stop what we started (mesh.mjs kills its services on exit), drop our databases.
for (const s of ["SIGINT", "SIGTERM"]) {
  process.once(s, () => {
    interrupted = true;
    log(`${s}: stopping`);
    cleanup().finally(() => process.exit(130));
  });
}

const machine = {
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? "unknown",
  memGiB: Math.round(os.totalmem() / 2 ** 30),
  os: `${os.type()} ${os.release()}`,
  node: process.version,
  postgres: await pg.settings(),
  natsServer: natsServerVersion(),
  loadBefore: os.loadavg().map((v) => v.toFixed(2)),
};

const results = [];
const longCalls = [];
try {
  // The fake app + webhook receiver, and the load generator: each in its own process.
  const sinks = await forkChild(path.join(here, "lib", "sinks.mjs"), { name: "sinks" });
  children.push(sinks);
  const loadgen = await forkChild(path.join(here, "lib", "loadgen.mjs"), { name: "loadgen" });
  children.push(loadgen);
  const pmPid = await postmasterPid(pg.client);
  const infraProcs = [
    { name: "postgres", pid: pmPid, tree: true },
    { name: "nats-server", pid: natsServerPid(natsUrl) },
  ];
  const harnessProcs = [
    { name: "loadgen", pid: loadgen.pid },
    { name: "sinks", pid: sinks.pid },
    { name: "orchestrator", pid: process.pid },
  ];
  const startCtx = { databaseUrl, natsUrl, pg, appUrl: sinks.info.appUrl, hookUrl: sinks.info.hookUrl, otlpUrl: sinks.info.otlpUrl, logDir, quick: opts.quick };
  log(`${mode} run of ${selected.map((s) => s.name).join(", ")}; logs in ${logDir}`);
  for (const spec of selected) {
    if (interrupted) break;
    try {
      results.push(await measureSystem(spec, { loadgen, sinks, pg, cfg, log, startCtx, infraProcs, harnessProcs, appDelayMs }));
    } catch (err) {
      log(`${spec.name} failed: ${err.stack ?? err}`);
      results.push({ name: spec.name, label: spec.label, kind: spec.kind, error: String(err.message ?? err) });
    }
  }
  // The long-call scenario, each system started afresh (peers with their concurrency raised).
  for (const spec of opts["no-long-calls"] ? [] : selected.filter((s) => LONG_CALL_SYSTEMS.has(s.name))) {
    if (interrupted) break;
    try {
      longCalls.push(await measureLongCalls(spec, { loadgen, sinks, cfg, log, startCtx, infraProcs }));
    } catch (err) {
      log(`${spec.name} long calls failed: ${err.stack ?? err}`);
      longCalls.push({ name: spec.name, label: spec.label, error: String(err.message ?? err) });
    }
  }
} finally {
  await cleanup();
}

machine.loadAfter = os.loadavg().map((v) => v.toFixed(2));
const doc = {
  mode,
  command: `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim().replace(/ --$/, ""),
  appDelayMs,
  finishedAt: new Date().toISOString(),
  seconds: (now() - started) / 1000,
  machine,
  settings: cfg,
  results,
  longCalls,
  targets: targets(results),
};
fs.mkdirSync(path.dirname(jsonPath), { recursive: true });
fs.writeFileSync(jsonPath, JSON.stringify(doc, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v), 2) + "\n");
const failed = results.some((r) => r.error) || longCalls.some((r) => r.error);
// Logs are kept when something failed (or BENCH_KEEP_LOGS is set), for a post-mortem.
const keepLogs = failed || Boolean(process.env.BENCH_KEEP_LOGS);
if (!keepLogs) fs.rmSync(logDir, { recursive: true, force: true });
console.log(renderReport(doc));
console.log(`\nJSON: ${path.relative(process.cwd(), jsonPath)}${keepLogs ? `; logs: ${logDir}` : ""}`);
// Figures are never asserted; a system that could not be measured fails the run.
process.exit(failed ? 1 : 0);
