#!/usr/bin/env node
// `npm run soak [-- --minutes 7 --runs 20]`: the real mesh, as
// `npm start` runs it with its defaults, holds calls longer than every default
// timeout on the path and shows them succeed and deliver their webhooks.
// Not part of `npm test`. See tests/soak/README.md.
//
// Processes: Postgres and NATS (DATABASE_URL / NATS_URL when they answer, else
// our own), the four services (scripts/lib/mesh.mjs), the fake app
// (tests/soak/app.mjs, its own process) and, in this one, the webhook receiver.
// Every 30 s a progress line; at the end a table, and exit 1 if any run did
// not succeed exactly once, with its webhook delivered and signed.
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { Agent } from "undici";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { ensureDeps } from "../../scripts/lib/deps.mjs";
import { startMesh } from "../../scripts/lib/mesh.mjs";
import { checkRun, checkSync, clock, printReport } from "./report.mjs";
import { startWebhookReceiver } from "./webhook-receiver.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const MODES = ["silent", "headers", "trickle"];
/** A run's deadline is 12 h by default (DESIGN.md); the hold stays clear of it. */
const MAX_HOLD_MS = 12 * 3600_000 - 2 * 60_000;
const PROGRESS_MS = 30_000;

const { values: args } = parseArgs({
  options: {
    minutes: { type: "string", default: "7" },
    runs: { type: "string", default: "20" },
    "grace-minutes": { type: "string", default: "5" },
    "keep-logs": { type: "boolean", default: false },
  },
});
const minutes = Number(args.minutes);
const runCount = Number(args.runs);
const graceMs = Number(args["grace-minutes"]) * 60_000;
if (!(minutes > 0 && minutes <= 720)) fail("--minutes must be in (0, 720]");
if (!(Number.isInteger(runCount) && runCount >= 1 && runCount <= 5000)) fail("--runs must be an integer in [1, 5000]");
if (!(graceMs >= 0)) fail("--grace-minutes must be ≥ 0");
const holdMs = Math.min(Math.round(minutes * 60_000), MAX_HOLD_MS);

const t0 = Date.now();
const log = (m) => console.log(`[soak ${clock(Date.now() - t0)}] ${m}`);
const cleanups = [];
let interrupted = false;
for (const s of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(s, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`${s}: stopping`);
  });
}

try {
  process.exitCode = (await soak()) ? 0 : 1;
} catch (err) {
  log(`soak failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exitCode = 1;
} finally {
  for (const c of cleanups.reverse()) await c().catch((err) => log(`cleanup: ${err.message}`));
}

async function soak() {
  log(`holding ${runCount} calls for ${clock(holdMs)} each (modes ${MODES.join(", ")}), mesh on its defaults`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "longhaul-soak-"));
  fs.chmodSync(dataDir, 0o755); // as root, Postgres runs as the postgres user and must reach inside
  cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
  const deps = await ensureDeps({ dataDir, log: (m) => log(m), fast: true, handleSignals: false });
  cleanups.push(() => deps.stop());

  // A database and a stream prefix of our own: nothing else on this Postgres or NATS is touched.
  const dbName = `longhaul_soak_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: deps.databaseUrl });
  admin.on("error", () => {});
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  cleanups.push(async () => {
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  });
  const dbUrl = new URL(deps.databaseUrl);
  dbUrl.pathname = `/${dbName}`;
  const prefix = `soak_${randomBytes(4).toString("hex")}`;
  cleanups.push(() => deleteStreams(deps.natsUrl, prefix));

  const app = await startApp();
  cleanups.push(app.stop);
  const hooks = await startWebhookReceiver();
  cleanups.push(hooks.close);

  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "longhaul-soak-logs-"));
  let keepLogs = args["keep-logs"];
  cleanups.push(async () => {
    if (keepLogs) log(`service logs kept in ${logDir}`);
    else fs.rmSync(logDir, { recursive: true, force: true });
  });
  const crashes = [];
  const mesh = await startMesh({
    databaseUrl: dbUrl.toString(),
    natsUrl: deps.natsUrl,
    natsPrefix: prefix,
    logDir,
    readyTimeoutMs: 120_000,
    env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true" }, // as `npm start`: the receiver is on loopback
    onExit: (name, index, r) => {
      if (!r.expected) crashes.push(`${name}#${index} exited (code ${r.code}, signal ${r.signal})`);
    },
  });
  cleanups.push(() => mesh.stop());
  log(`mesh up: gateway ${mesh.ingressUrl}, logs ${logDir}`);
  const api = gateway(mesh.ingressUrl, mesh.apiKey);

  // One attempt only: a cut call must show as a failure, not hide behind a retry.
  const put = await api("PUT", "/v1/apps/soak", { url: app.url, retry: { max_attempts: 1 } });
  if (put.status !== 200 && put.status !== 201) throw new Error(`PUT /v1/apps/soak: ${put.status} ${put.text}`);
  const secret = (await api("GET", "/v1/webhooks/secret")).json?.secret;
  if (!secret) throw new Error("GET /v1/webhooks/secret gave no secret");
  hooks.setSecret(secret);

  /** @type {{i: number, runId: string, mode: string, body: string}[]} */
  const runs = [];
  for (let i = 0; i < runCount && !interrupted; i++) {
    const mode = MODES[i % MODES.length];
    const body = `soak payload ${i} ${randomBytes(8).toString("hex")}`;
    const hook = encodeURIComponent(`${hooks.url}/hook/${i}`);
    const r = await api("POST", `/dev/soak/work/${i}?mode=${mode}&hold_ms=${holdMs}&async=true&webhookEndpoint=${hook}`, body);
    if (r.status !== 202) throw new Error(`submit ${i}: ${r.status} ${r.text}`);
    runs.push({ i, runId: r.json.run_id, mode, body });
  }
  // Sync pass-through calls (no ?async), one per mode: the gateway holds each
  // HTTP request on one gRPC stream to the invoker for the whole hold, past the
  // gRPC servers' max connection age (GRPC_MAX_CONNECTION_AGE_SECONDS, 300 s)
  // and a keepalive period after it (patches/README.md).
  const syncAgent = new Agent({ headersTimeout: 0, bodyTimeout: 0 });
  cleanups.push(() => syncAgent.close());
  const syncCalls = interrupted
    ? []
    : MODES.map((mode) => callSync(api, mode, holdMs, holdMs + graceMs + 60_000, syncAgent));
  const submittedAt = Date.now();
  log(`submitted ${runs.length} runs and ${syncCalls.length} sync calls; the app answers each ${clock(holdMs)} after it arrives`);

  const db = new pg.Client({ connectionString: dbUrl.toString() });
  db.on("error", () => {});
  await db.connect();
  cleanups.push(() => db.end());
  const invokerPid = mesh.processes.find((p) => p.name === "invoker")?.pid;
  const leases = { previous: new Map(), renewals: 0, ticks: 0 };
  const deadline = submittedAt + holdMs + graceMs + 60_000;
  let nextProgress = Date.now() + PROGRESS_MS;
  let done = false;
  while (!interrupted && Date.now() < deadline) {
    const s = await db.query(
      `select count(*) filter (where status in ('succeeded','failed','timed_out','cancelled','expired'))::int as finished,
              count(*) filter (where webhook_state = 'pending')::int as hooks_pending
         from runs where id = any($1::uuid[])`,
      [runs.map((r) => r.runId)],
    );
    done = s.rows[0].finished === runs.length && s.rows[0].hooks_pending === 0;
    if (done || crashes.length > 0) break;
    if (Date.now() >= nextProgress) {
      nextProgress += PROGRESS_MS;
      await progress(db, leases, app, hooks, invokerPid);
    }
    await sleep(1000);
  }
  await progress(db, leases, app, hooks, invokerPid);
  if (!done) log(crashes.length ? `a service crashed: ${crashes.join("; ")}` : "gave up waiting: some runs or webhooks did not finish");

  const checked = [];
  for (const r of runs) {
    const run = (await api("GET", `/v1/runs/${r.runId}`)).json;
    const result = await api("GET", `/v1/runs/${r.runId}/result`);
    checked.push(checkRun({ ...r, holdMs, run, result, call: app.calls.get(r.runId), deliveries: hooks.byRun.get(r.runId) ?? [] }));
  }
  const warnings = Object.fromEntries(
    ["scheduler", "invoker", "notifier", "ingress"].map((n) => [n, countWarnings(mesh.logs(n))]),
  );
  const sync = (await Promise.all(syncCalls)).map((c) => checkSync({ ...c, holdMs }));
  const ok = printReport({ checked, sync, holdMs, leases, warnings, crashes, elapsedMs: Date.now() - t0, log });
  if (!ok) keepLogs = true;
  return ok && !interrupted;
}

/** A progress line: runs by status, calls open at the app, leases renewed since the last line, webhooks. */
async function progress(db, leases, app, hooks, invokerPid) {
  const byStatus = await db.query("select status, count(*)::int as n from runs where app = 'soak' group by status order by status");
  // A running run's lease is the later of its own (stamped at the claim) and
  // its invoker's session lease, which heartbeats renew (docs/ARCHITECTURE.md, "Leases").
  const running = await db.query(
    `select r.id, greatest(r.lease_expires_at, s.lease_expires_at) as lease_expires_at,
            extract(epoch from greatest(r.lease_expires_at, s.lease_expires_at) - now())::float as left
       from runs r left join invoker_sessions s on s.invoker_id = r.owner
      where r.status = 'running'`,
  );
  let renewed = 0;
  let seen = 0;
  for (const row of running.rows) {
    const before = leases.previous.get(row.id);
    if (before !== undefined) {
      seen += 1;
      if (row.lease_expires_at.getTime() > before) renewed += 1;
    }
  }
  leases.previous = new Map(running.rows.map((row) => [row.id, row.lease_expires_at.getTime()]));
  leases.renewals += renewed;
  leases.ticks += 1;
  const minLeft = running.rows.length ? Math.min(...running.rows.map((r) => r.left)) : undefined;
  const statuses = byStatus.rows.map((r) => `${r.status} ${r.n}`).join(", ") || "none";
  const delivered = [...hooks.byRun.values()].filter((d) => d.some((x) => x.verified)).length;
  log(
    `runs: ${statuses} | app: ${app.open()} calls open | leases renewed since last line: ${renewed}/${seen}` +
      `${minLeft !== undefined ? `, shortest left ${minLeft.toFixed(1)} s` : ""} | webhooks: ${delivered} verified` +
      `${invokerPid ? ` | invoker RSS ${rssMb(invokerPid)} MB` : ""}`,
  );
}

/** Forks the fake app and mirrors its calls by run id. */
async function startApp() {
  const child = fork(path.join(here, "app.mjs"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const calls = new Map();
  let open = 0;
  const port = await new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the fake app exited (code ${code})`)));
    child.on("message", (m) => {
      if (m.type === "listening") resolve(m.port);
      if (m.type === "arrived") open += 1;
      if (m.type === "answered" || m.type === "closed-early") open -= 1;
      if (m.call) calls.set(m.call.runId, m.call);
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    open: () => open,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}

/** Calls the gateway with the soak's key; `init` adds to fetch's options (a dispatcher, a signal). */
function gateway(base, key) {
  return async (method, p, body, init = {}) => {
    const res = await fetch(`${base}${p}`, {
      ...init,
      method,
      headers: { authorization: `Bearer ${key}`, ...(typeof body === "object" ? { "content-type": "application/json" } : {}) },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, text, json };
  };
}

/** One sync call through the gateway, held by the app for `holdMs`: its status, body and duration, or why it failed. */
async function callSync(api, mode, holdMs, giveUpMs, dispatcher) {
  const started = Date.now();
  try {
    const { status, text } = await api("POST", `/dev/soak/sync/${mode}?mode=${mode}&hold_ms=${holdMs}`, `sync ${mode}`, {
      dispatcher,
      signal: AbortSignal.timeout(giveUpMs),
    });
    return { mode, status, text, ms: Date.now() - started };
  } catch (err) {
    return { mode, status: 0, text: "", ms: Date.now() - started, error: err instanceof Error ? err.message : String(err) };
  }
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

/** pino lines at warn (40) or above, by message. */
function countWarnings(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const l = JSON.parse(line);
      if (l.level >= 40) out[l.msg] = (out[l.msg] ?? 0) + 1;
    } catch {
      // not a log line
    }
  }
  return out;
}

function rssMb(pid) {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
    return Math.round(kb / 1024);
  } catch {
    return "?";
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function fail(message) {
  console.error(`soak: ${message}`);
  process.exit(2);
}
