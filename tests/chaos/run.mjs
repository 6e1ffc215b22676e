#!/usr/bin/env node
// `npm run chaos [-- --runs 2000 --seed 1 --quick --keep-logs]`: a bounded,
// self-stopping fault run against a real mesh (two copies of each service,
// a 3-node JetStream cluster with 3-replica streams, a private Postgres),
// while async runs with webhooks flow through it. Prints one table of figures
// and never asserts them: exit 0 unless the harness itself failed.
// Not part of `npm test`. See tests/chaos/README.md.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { connect } from "@nats-io/transport-node";
import { ensureStreams, natsNames } from "@longhaul/shared/nats";
import { startPostgres } from "../../scripts/lib/postgres.mjs";
import { startMesh } from "../../scripts/lib/mesh.mjs";
import { startWebhookReceiver } from "../soak/webhook-receiver.mjs";
import { startChaosApp } from "./app.mjs";
import { startNatsCluster } from "./nats-cluster.mjs";
import { createSubmitter } from "./submit.mjs";
import { collectFigures, printTable } from "./report.mjs";

const { values: args } = parseArgs({
  options: {
    runs: { type: "string" },
    seed: { type: "string", default: "1" },
    rate: { type: "string" },
    quick: { type: "boolean", default: false },
    "keep-logs": { type: "boolean", default: false },
  },
});
const quick = args.quick;
const runCount = Number(args.runs ?? (quick ? 200 : 2000));
const seed = Number(args.seed);
const rate = Number(args.rate ?? (quick ? 3 : 10));
if (!(Number.isInteger(runCount) && runCount >= 10 && runCount <= 20_000)) usage("--runs: an integer in [10, 20000]");
if (!Number.isInteger(seed)) usage("--seed: an integer");
if (!(rate > 0 && rate <= 200)) usage("--rate: submits per second in (0, 200]");
/** Holds of the instant, short and long calls, in ms. */
const HOLDS = quick ? [0, 2_000, 10_000] : [0, 5_000, 60_000];
/** A killed copy (or NATS node, or Postgres) is started again after this. */
const DOWN_MS = 2_000;
/** Runs not finished this long after the last fault count as stuck. */
const SETTLE_MS = 120_000;
const MIN_FAULT_GAP_MS = quick ? 8_000 : 15_000;
const PROGRESS_MS = 15_000;
const NATS_PREFIX = "longhaul";

const t0 = Date.now();
const clock = () => `${((Date.now() - t0) / 1000).toFixed(0)}s`;
const log = (m) => console.error(`[chaos ${clock()}] ${m}`);
const random = mulberry32(seed);
let interrupted = false;
const interruption = new AbortController();
for (const s of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(s, () => {
    // A second signal: the exit hooks of mesh.mjs, nats-cluster.mjs and ours kill every child.
    if (interrupted) process.exit(130);
    interrupted = true;
    interruption.abort();
    log(`${s}: stopping (again to kill everything at once)`);
  });
}

const cleanups = [];
let harnessFailed = false;
let keepLogs = args["keep-logs"];
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "longhaul-chaos-"));
fs.chmodSync(workDir, 0o755); // as root, Postgres runs as the postgres user and must reach inside
try {
  await chaos();
} catch (err) {
  harnessFailed = true;
  keepLogs = true;
  log(`harness failed: ${err instanceof Error ? err.stack : String(err)}`);
} finally {
  for (const c of cleanups.reverse()) await c().catch((err) => log(`cleanup: ${err.message}`));
  if (keepLogs) log(`logs kept in ${workDir}`);
  else fs.rmSync(workDir, { recursive: true, force: true });
}
process.exitCode = harnessFailed ? 1 : 0;

async function chaos() {
  log(`${runCount} runs at up to ${rate}/s, holds ${HOLDS.map((h) => h / 1000).join("/")} s, seed ${seed}; load average ${loadavg()}`);
  const pgServer = await startPostgres({ dir: path.join(workDir, "pg"), fast: true, log });
  const stopPgOnExit = () => pgServer.stopSync();
  process.on("exit", stopPgOnExit);
  cleanups.push(async () => {
    await pgServer.stop();
    process.off("exit", stopPgOnExit);
  });
  log(`postgres: ${pgServer.source} at ${pgServer.url} (fsync off)`);
  const nats = await startNatsCluster({ dir: path.join(workDir, "nats"), log });
  cleanups.push(() => nats.stop());
  log(`nats: 3-node JetStream cluster at ${nats.url}`);
  // Every scheduler and notifier creates the streams at start. Two copies
  // creating one 3-replica stream at once on a fresh cluster can leave one
  // request unanswered (seen with nats-server 2.9.10), and that copy exits on
  // the timeout; so the streams are made here first, by the services' own code.
  const nc = await connect({ servers: nats.url.split(","), timeout: 5_000 });
  try {
    await ensureStreams(nc, natsNames(NATS_PREFIX), { replicas: 3 });
  } finally {
    await nc.close();
  }

  const app = await startChaosApp();
  cleanups.push(app.close);
  const hooks = await startWebhookReceiver();
  cleanups.push(hooks.close);

  const crashes = [];
  let mesh;
  const meshOptions = {
    databaseUrl: pgServer.url,
    natsUrl: nats.url,
    natsPrefix: NATS_PREFIX,
    logDir: path.join(workDir, "services"),
    readyTimeoutMs: 120_000,
    services: { scheduler: 2, invoker: 2, notifier: 2, ingress: 2 },
    env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true", LONGHAUL_NATS_REPLICAS: "3" },
    onExit: (name, index, r) => {
      if (r.expected || !mesh) return;
      // As a Deployment would: a copy that died by itself is started again.
      crashes.push({ at: clock(), what: `${name}#${index}`, code: r.code, signal: r.signal });
      log(`${name}#${index} exited by itself (code ${r.code}, signal ${r.signal}); starting it again in ${DOWN_MS / 1000} s`);
      void sleep(DOWN_MS).then(() => startCopy(mesh, name, index).catch((err) => log(`restart of ${name}#${index} failed: ${err.message}`)));
    },
  };
  // A copy that exits while the mesh starts fails startMesh (which stops what it
  // started); a Deployment would start it again, so the harness tries once more.
  for (let attempt = 1; ; attempt++) {
    try {
      mesh = await startMesh(meshOptions);
      break;
    } catch (err) {
      if (attempt >= 2 || interrupted) throw err;
      crashes.push({ at: clock(), what: `mesh start: ${err.message.split("\n")[0]}`, code: null, signal: null });
      log(`the mesh did not start (${err.message.split("\n")[0]}); starting it again`);
    }
  }
  cleanups.push(() => mesh.stop());
  const ingressUrls = mesh.processes.filter((p) => p.name === "ingress").map((p) => `http://127.0.0.1:${p.ports.LONGHAUL_HTTP_PORT}`);
  log(`mesh up: gateways ${ingressUrls.join(", ")}`);

  const db = new pg.Pool({ connectionString: pgServer.url, max: 3, connectionTimeoutMillis: 5_000 });
  db.on("error", () => {}); // a Postgres restart ends idle clients; the next query reconnects
  cleanups.push(() => db.end());

  const api = async (method, p, body) => {
    const res = await fetch(`${ingressUrls[0]}${p}`, {
      method,
      headers: { authorization: `Bearer ${mesh.apiKey}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${p}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  await api("PUT", "/v1/apps/chaos-idem", { url: `${app.url}/idem`, retry: { idempotent: true } });
  await api("PUT", "/v1/apps/chaos-once", { url: `${app.url}/once`, retry: { idempotent: false } });
  hooks.setSecret((await api("GET", "/v1/webhooks/secret")).secret);

  // The workload, drawn from the seed: which app, which hold.
  const plan = Array.from({ length: runCount }, (_, i) => ({
    i,
    app: random() < 0.5 ? "chaos-idem" : "chaos-once",
    holdMs: HOLDS[Math.floor(random() * HOLDS.length)],
    hookUrl: `${hooks.url}/hook/${i}`,
  }));
  const submitter = createSubmitter({ ingressUrls, apiKey: mesh.apiKey, seed, signal: interruption.signal, log });
  const submitWindowMs = Math.max((runCount / rate) * 1000, 8 * MIN_FAULT_GAP_MS);
  const submitStart = Date.now();
  const submitting = submitter.submitAll(plan, { rate: Math.min(rate, (runCount / submitWindowMs) * 1000) });

  const faults = [];
  const progress = setInterval(() => void progressLine(db, app, hooks, submitter).catch(() => {}), PROGRESS_MS);
  cleanups.push(async () => clearInterval(progress));
  const faulting = runFaults({ mesh, nats, pgServer, db, faults, submitStart, gapMs: submitWindowMs / 8 });
  const [submitted] = await Promise.all([submitting, faulting]);
  const lastFaultAt = Math.max(...faults.map((f) => f.endedAt ?? f.at));
  log(`submits done (${submitted.accepted.size} accepted); faults done; waiting up to ${SETTLE_MS / 1000} s after the last fault`);

  // Until every run is finished and its webhook settled, or SETTLE_MS after the last fault.
  for (;;) {
    if (interrupted || Date.now() > lastFaultAt + SETTLE_MS) break;
    const open = await db
      .query(
        `select count(*) filter (where status not in ('succeeded','failed','timed_out','cancelled','expired'))::int as running,
                count(*) filter (where webhook_state = 'pending')::int as hooks
           from runs`,
      )
      .then((r) => r.rows[0])
      .catch(() => undefined);
    if (open && open.running === 0 && open.hooks === 0) break;
    await sleep(2_000);
  }
  const settledAt = Date.now();
  clearInterval(progress);

  const figures = await collectFigures({ db, app, hooks, submitted, faults, crashes, mesh, lastFaultAt, settledAt, settleMs: SETTLE_MS, interrupted });
  console.log("");
  console.log(`npm run chaos -- ${process.argv.slice(2).join(" ")}`.trimEnd());
  console.log(
    `${runCount} runs (${HOLDS.map((h) => `${h / 1000} s`).join(" / ")} holds, half to an idempotent app), seed ${seed}; ` +
      `${os.cpus().length} cores, load average ${loadavg()}; ${((Date.now() - t0) / 1000).toFixed(0)} s in all`,
  );
  console.log("Faults:");
  for (const f of faults) console.log(`  ${f.label} ${f.detail ?? ""}`.trimEnd());
  console.log("");
  printTable(figures);
}

/**
 * The faults, in order, spread over the submit window: kill -9 of one copy of
 * every service (started again DOWN_MS later), a SIGTERM of an invoker holding
 * calls (started again once it has drained and exited), kill -9 of a NATS node
 * and a restart of Postgres. The drain runs on while the later faults happen.
 */
async function runFaults({ mesh, nats, pgServer, db, faults, submitStart, gapMs }) {
  const pick = () => (random() < 0.5 ? 0 : 1);
  const killedInvoker = pick();
  const steps = [
    () => killCopy("scheduler", pick()),
    () => killCopy("invoker", killedInvoker, { holding: true }),
    () => killCopy("notifier", pick()),
    () => killCopy("ingress", pick()),
    () => drainInvoker(1 - killedInvoker),
    async () => {
      const node = Math.floor(random() * 3);
      const f = begin(`kill -9 NATS node ${nats.nodes[node].name} (pid ${nats.nodes[node].pid()})`);
      await nats.kill(node);
      await sleep(DOWN_MS);
      await nats.start(node);
      end(f, `→ back as pid ${nats.nodes[node].pid()}`);
    },
    async () => {
      const f = begin("Postgres stop (fast) and start");
      await pgServer.restart({ downMs: DOWN_MS });
      end(f, `→ answering again after ${((Date.now() - f.at) / 1000).toFixed(1)} s`);
    },
  ];
  let drain;
  for (let k = 0; k < steps.length; k++) {
    const due = submitStart + (k + 1) * gapMs;
    await sleepUntil(due);
    if (interrupted) break;
    const r = await steps[k]();
    if (r?.drain) drain = r.drain;
  }
  if (drain) await drain;

  function begin(label) {
    const f = { at: Date.now(), label: `${clock()} ${label}` };
    faults.push(f);
    log(label);
    return f;
  }
  function end(f, detail) {
    f.endedAt = Date.now();
    if (detail) f.detail = detail;
  }

  async function killCopy(name, index, { holding = false } = {}) {
    if (holding) await waitHolding(mesh, db, index);
    const before = mesh.processes.find((p) => p.name === name && p.index === index);
    const held = name === "invoker" ? await heldBy(db, before.pid) : undefined;
    const f = begin(`kill -9 ${name}#${index} (pid ${before.pid}${held !== undefined ? `, holding ${held} calls` : ""})`);
    f.kind = "kill";
    f.service = name;
    f.pid = before.pid;
    await mesh.kill(name, index, "SIGKILL");
    await sleep(DOWN_MS);
    await startCopy(mesh, name, index);
    end(f, `→ back as pid ${mesh.processes.find((p) => p.name === name && p.index === index).pid}`);
  }

  async function drainInvoker(index) {
    await waitHolding(mesh, db, index);
    const before = mesh.processes.find((p) => p.name === "invoker" && p.index === index);
    const held = await heldBy(db, before.pid);
    const f = begin(`SIGTERM invoker#${index} (pid ${before.pid}, holding ${held} calls)`);
    f.kind = "sigterm";
    f.service = "invoker";
    f.pid = before.pid;
    f.held = held;
    // The drain goes on in the background: the next faults do not wait for it.
    const drain = (async () => {
      const r = await mesh.kill("invoker", index, "SIGTERM", Infinity);
      const drainedMs = Date.now() - f.at;
      log(`invoker#${index} drained and exited after ${(drainedMs / 1000).toFixed(1)} s (code ${r.code}, signal ${r.signal})`);
      await startCopy(mesh, "invoker", index);
      end(f, `→ exited after ${(drainedMs / 1000).toFixed(1)} s (code ${r.code}); a fresh copy is pid ${mesh.processes.find((p) => p.name === "invoker" && p.index === index).pid}`);
    })();
    return { drain };
  }
}

/** Starts a copy again; a start that fails (e.g. while Postgres is down) is tried again, 3 times in all. */
async function startCopy(mesh, name, index) {
  for (let attempt = 1; ; attempt++) {
    try {
      await mesh.start(name, index);
      return;
    } catch (err) {
      if (/still running/.test(err.message)) return;
      if (attempt >= 3 || interrupted) throw err;
      log(`start of ${name}#${index} failed (${err.message.split("\n")[0]}); trying again`);
      await sleep(DOWN_MS);
    }
  }
}

/** Calls in flight at the invoker with this pid: its attempts not yet ended (INVOKER_ID is `<host>-<pid>-<hex>`). */
async function heldBy(db, pid) {
  const r = await db
    .query("select count(*)::int as n from run_attempts where finished_at is null and invoker_id like $1", [`%-${pid}-%`])
    .catch(() => undefined);
  return r?.rows[0].n ?? 0;
}

/** Waits (up to 60 s) until invoker#index holds a call, so that the fault cuts (or drains) something. */
async function waitHolding(mesh, db, index) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && !interrupted) {
    const p = mesh.processes.find((x) => x.name === "invoker" && x.index === index);
    if (p.alive && (await heldBy(db, p.pid)) > 0) return;
    await sleep(500);
  }
}

async function progressLine(db, app, hooks, submitter) {
  const r = await db.query("select status, count(*)::int as n from runs group by status order by status");
  const statuses = r.rows.map((x) => `${x.status} ${x.n}`).join(", ") || "none";
  log(`runs: ${statuses} | app: ${app.open()} calls open | webhooks: ${hooks.byRun.size} runs | submits: ${submitter.summary()}`);
}

function mulberry32(a) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function loadavg() {
  return os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(" ");
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function sleepUntil(at) {
  while (Date.now() < at && !interrupted) await sleep(Math.min(500, at - Date.now()));
}

function usage(message) {
  console.error(`chaos: ${message}`);
  process.exit(2);
}
