#!/usr/bin/env node
// Usage: npm run bench:profile -- [--runs 2000] [--rate 100] [--no-webhook] [--no-profile] [--out DIR] [--top 25]
//                                 [--node-args "--a-v8-flag ..."]   (added to every service's node command)
//                                 [--split 0.1]   (accept→app split by hop, from traces of that share of runs)
//                                 [--warm-up 10]  (seconds of the same load first, left out of every figure)
//                                 [--idle 30]     (then that long without traffic: CPU per service, % of a core)
//
// CPU profile of every Longhaul service under a steady load: starts the mesh
// as `npm start` does but with `node --cpu-prof`, an app and a webhook
// receiver in this process, sends `--runs` async runs at `--rate` per second
// (open loop, bounded in count and time), waits until every webhook arrived
// (or 60 s after the last send), stops the mesh with SIGTERM so that each
// service writes its profile, and prints per service the top frames by self
// time and the self time per package. The .cpuprofile files stay in --out
// (open them in Chrome DevTools or speedscope). Figures are printed, never
// asserted. `--no-profile` runs the same load without the profiler and
// prints only the CPU per run, split into user and system time (the
// profiler's sampling signals inflate system time). It also prints accept
// and accept→app p50/p99 from each request's intended send time, and the runs
// in flight at each stage once a second: the stage that only grows is the
// one that limits the rate. `--split <ratio>` exports the traces of that
// share of the runs (OpenTelemetry OTLP/HTTP JSON, to a receiver in this
// process) and prints accept→app split by hop (lib/accept-split.mjs); the
// export costs CPU, so read its CPU figures apart from runs without it. Runs
// under scripts/with-deps.mjs (Postgres and NATS). `--warm-up <s>` sends
// the same load for that long first and waits for it to drain: a fresh
// mesh's first seconds (the JIT warming up) stay out of every figure.
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { startMesh } from "../../scripts/lib/mesh.mjs";
import { acceptSplit, spanCollector } from "./lib/accept-split.mjs";
import { summariseProfile } from "./lib/cpu-profile.mjs";
import { fmtMs, summary } from "./lib/stats.mjs";
import * as clock from "./lib/clock.mjs";
import { cpuMeter, natsServerPid, postmasterPid } from "./lib/proc-cpu.mjs";

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "2000" },
    rate: { type: "string", default: "100" },
    "no-webhook": { type: "boolean", default: false },
    "no-profile": { type: "boolean", default: false },
    out: { type: "string" },
    top: { type: "string", default: "20" },
    "node-args": { type: "string", default: "" },
    split: { type: "string" },
    "warm-up": { type: "string", default: "0" },
    idle: { type: "string", default: "0" },
  },
});
const runs = Math.max(1, Math.min(100_000, Number(args.runs)));
const rate = Math.max(1, Math.min(5_000, Number(args.rate)));
const top = Number(args.top);
const warmUpSeconds = Math.max(0, Math.min(120, Number(args["warm-up"])));
const idleSeconds = Math.max(0, Math.min(600, Number(args.idle)));
const outDir = path.resolve(args.out ?? fs.mkdtempSync(path.join(os.tmpdir(), "longhaul-profile-")));
fs.mkdirSync(outDir, { recursive: true });
const log = (m) => console.error(`[profile] ${m}`);

const databaseUrl = process.env.DATABASE_URL;
const natsUrl = process.env.NATS_URL;
if (!databaseUrl || !natsUrl) throw new Error("run under scripts/with-deps.mjs (npm run bench:profile)");

// A database and stream prefix of our own, removed at the end.
const dbName = `lh_profile_${randomBytes(4).toString("hex")}`;
const admin = new pg.Client({ connectionString: databaseUrl });
await admin.connect();
await admin.query(`create database ${dbName}`);
const dbUrl = new URL(databaseUrl);
dbUrl.pathname = `/${dbName}`;
const prefix = `prof_${randomBytes(4).toString("hex")}`;

// The app answers at once; the receiver counts webhooks.
let hooks = 0;
let appCalls = 0;
const answer = JSON.stringify({ ok: true, summary: ["revenue up", "costs flat"] });
/** When the app received each run's call, by run id (the invoker sends it as x-longhaul-run-id). */
const appAt = new Map();
const appServer = http.createServer((req, res) => {
  appCalls++;
  appAt.set(req.headers["x-longhaul-run-id"], performance.now());
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(answer);
  });
});
const hookServer = http.createServer((req, res) => {
  hooks++;
  req.resume();
  req.on("end", () => {
    res.writeHead(204);
    res.end();
  });
});
const listen = (s) => new Promise((r) => s.listen(0, "127.0.0.1", () => r(s.address().port)));
const appPort = await listen(appServer);
const hookPort = await listen(hookServer);
// With --split: the services export a sample of the runs' traces here.
const spans = args.split === undefined ? undefined : spanCollector();
const splitRatio = spans ? Math.max(0, Math.min(1, Number(args.split))) : 0;
const traceEnv = spans
  ? {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${await listen(spans.server)}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: String(splitRatio),
    }
  : {};

const profDir = (name) => path.join(outDir, name);
const mesh = await startMesh({
  databaseUrl: dbUrl.toString(),
  natsUrl,
  natsPrefix: prefix,
  logDir: path.join(outDir, "logs"),
  readyTimeoutMs: 120_000,
  env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true", LONGHAUL_APP_ALLOWED_NETWORKS: "127.0.0.0/8,::1/128", ...traceEnv },
  nodeArgs: ["--import", "@longhaul/shared/otel-register", ...args["node-args"].split(" ").filter(Boolean)],
  serviceEnv: args["no-profile"]
    ? {}
    : Object.fromEntries(
        ["scheduler", "invoker", "notifier", "ingress"].map((n) => [n, { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profDir(n)}` }]),
      ),
});

/** What cpuOf counts for a process, none of it yet. */
const NOTHING = { user: 0, system: 0, reads: 0, writes: 0, sleeps: 0, preempted: 0 };

/** CPU ms (user and system, from /proc) of each service process, by name. */
function cpuOf(processes) {
  const tick = 10; // USER_HZ is 100 on Linux: a tick is 10 ms
  const out = {};
  for (const p of processes) {
    if (!p.pid) continue;
    try {
      const fields = fs.readFileSync(`/proc/${p.pid}/stat`, "utf8").split(") ")[1].split(" ");
      // read- and write-like system calls (read/readv, write/writev: sockets, pipes, files) of all threads.
      const io = Object.fromEntries(
        fs.readFileSync(`/proc/${p.pid}/io`, "utf8").trim().split("\n").map((l) => l.split(": ")).map(([k, v]) => [k, Number(v)]),
      );
      // Context switches of the main thread: voluntary ones are its sleeps (each a wakeup after it), the others preemptions.
      const status = fs.readFileSync(`/proc/${p.pid}/status`, "utf8");
      const switches = (name) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+)`, "m"))?.[1] ?? 0);
      const was = out[p.name] ?? NOTHING;
      out[p.name] = {
        user: was.user + Number(fields[11]) * tick,
        system: was.system + Number(fields[12]) * tick,
        reads: was.reads + io.syscr,
        writes: was.writes + io.syscw,
        sleeps: was.sleeps + switches("voluntary_ctxt_switches"),
        preempted: was.preempted + switches("nonvoluntary_ctxt_switches"),
      };
    } catch {
      // gone
    }
  }
  return out;
}
async function commits() {
  const r = await admin.query("select xact_commit::bigint as n from pg_stat_database where datname = $1", [dbName]);
  return Number(r.rows[0]?.n ?? 0);
}
/** CPU ms per run during the load window (start-up excluded), by service; `pgCommits`: commits per run. */
const cpuWindow = {};

let failed = 0;
try {
  const auth = { authorization: `Bearer ${mesh.apiKey}` };
  const put = await fetch(`${mesh.ingressUrl}/v1/apps/bench`, {
    method: "PUT",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ url: `http://127.0.0.1:${appPort}` }),
  });
  if (put.status >= 300) throw new Error(`PUT /v1/apps/bench: ${put.status} ${await put.text()}`);

  const hook = encodeURIComponent(`http://127.0.0.1:${hookPort}/hook`);
  const url = new URL(`${mesh.ingressUrl}/dev/bench/predict?async=true${args["no-webhook"] ? "" : `&webhookEndpoint=${hook}`}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
  const body = JSON.stringify({ prompt: "Summarise the attached quarterly report in three bullet points. ".repeat(3) });
  /** Why submits were refused: HTTP status or socket error, counted. */
  const refusals = new Map();
  const refusal = (why) => {
    refusals.set(why, (refusals.get(why) ?? 0) + 1);
    return false;
  };
  /** Each accepted submit: its intended send time, its 202's arrival and its run id. */
  const acceptedRuns = [];
  const submit = (due) =>
    new Promise((resolve) => {
      const req = http.request(
        { agent, host: url.hostname, port: url.port, path: url.pathname + url.search, method: "POST", headers: { ...auth, "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
        (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("end", () => {
            if (res.statusCode !== 202) return resolve(refusal(`HTTP ${res.statusCode}`));
            acceptedRuns.push({ due, done: performance.now(), runId: JSON.parse(Buffer.concat(chunks).toString()).run_id });
            resolve(true);
          });
        },
      );
      req.on("error", (err) => resolve(refusal(err.code ?? err.message)));
      req.end(body);
    });

  /** Sends `count` runs at the rate, open loop; resolves when each was answered. */
  const send = async (count, onAccepted) => {
    const start = performance.now();
    const pending = [];
    for (let i = 0; i < count; i++) {
      const due = start + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      pending.push(submit(due).then(onAccepted));
    }
    await Promise.all(pending);
    return start;
  };
  /** Waits until `n` app calls (no webhook) or webhooks arrived, at most `ms`. */
  const drained = async (n, ms) => {
    const until = Date.now() + ms;
    while ((args["no-webhook"] ? appCalls : hooks) < n && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  };
  if (warmUpSeconds > 0) {
    const count = Math.round(warmUpSeconds * rate);
    log(`warming up: ${count} runs at ${rate}/s, left out of every figure`);
    let warmed = 0;
    await send(count, (ok) => ok && warmed++);
    await drained(warmed, 60_000);
    acceptedRuns.length = 0;
    refusals.clear();
    appCalls = 0;
    hooks = 0;
    appAt.clear();
  }

  log(`sending ${runs} runs at ${rate}/s${args["no-webhook"] ? " without webhooks" : " with webhooks"}`);
  // Every message the mesh sends under its prefix, by kind (`dispatch`, `run.changed`, ...).
  const wire = await connect({ servers: natsUrl.split(",") });
  const onWire = new Map();
  wire.subscribe(`${prefix}.>`, {
    callback: (_err, msg) => {
      const kind = msg.subject.split(".").slice(1, msg.subject.startsWith(`${prefix}.run.`) ? 3 : 2).join(".");
      onWire.set(kind, (onWire.get(kind) ?? 0) + 1);
    },
  });
  await wire.flush();
  // Postgres (postmaster and every backend: other databases' too) and nats-server, for the whole box.
  const serverProcs = [
    { name: "postgres", pid: await postmasterPid(admin), tree: true },
    { name: "nats-server", pid: natsServerPid(natsUrl) },
  ];
  for (const p of serverProcs) if (!p.pid) log(`${p.name}: process not found on this machine; left out of the whole box`);
  const servers = cpuMeter(serverProcs);
  await servers.start();
  const cpuBefore = cpuOf(mesh.processes);
  const pgBefore = await commits();
  // In flight each second, by stage: accepted and not yet at the app; answered by
  // the app and not yet ended (no run.finished on the wire); ended and not yet
  // at the webhook receiver. A stage that only grows is the one that limits.
  const inFlight = [];
  const sampler = setInterval(() => {
    const finished = onWire.get("run.finished") ?? 0;
    inFlight.push([acceptedRuns.length - appCalls, appCalls - finished, finished - hooks]);
  }, 1000);
  // On the bench's clock (lib/clock.mjs), that of lib/stall-log.mjs: its lines can be laid beside each second's figures.
  log(`measuring from ${clock.now().toFixed(0)} ms (monotonic)`);
  const t0 = await send(runs, (ok) => ok || failed++);
  const expected = runs - failed;
  await drained(expected, 60_000);
  clearInterval(sampler);
  const drainedMs = performance.now() - t0 - ((runs - 1) * 1000) / rate;
  log(`sent ${runs} (${failed} refused${refusals.size ? `: ${[...refusals].map(([k, n]) => `${k} ×${n}`).join(", ")}` : ""}) in ${((performance.now() - t0) / 1000).toFixed(1)} s; app calls ${appCalls}, webhooks ${hooks}`);
  log(`last ${args["no-webhook"] ? "app call" : "webhook"} ${drainedMs.toFixed(0)} ms after the last send`);
  log(`in flight each second (accepted→app / app→run.finished / run.finished→webhook): ${inFlight.map((s) => s.join("/")).join(" ")}`);
  // Latencies from each request's intended send time (open loop), as the bench measures them.
  const acceptMs = summary(acceptedRuns.map((r) => r.done - r.due));
  const appMs = summary(acceptedRuns.filter((r) => appAt.has(r.runId)).map((r) => appAt.get(r.runId) - r.due));
  log(`accept p50/p99 ${fmtMs(acceptMs.p50)} / ${fmtMs(acceptMs.p99)} ms; accept→app p50/p99 ${fmtMs(appMs.p50)} / ${fmtMs(appMs.p99)} ms (${appMs.n} runs)`);
  // Each second's accept→app p50/p99 (by intended send time): a start-up stall shows apart from the steady state.
  const bySecond = [];
  for (const r of acceptedRuns) if (appAt.has(r.runId)) (bySecond[Math.floor((r.due - t0) / 1000)] ??= []).push(appAt.get(r.runId) - r.due);
  log(`accept→app p50/p99 each second: ${bySecond.map((l) => (l ? `${fmtMs(summary(l).p50)}/${fmtMs(summary(l).p99)}` : "-")).join(" ")}`);
  const cpuAfter = cpuOf(mesh.processes);
  if (spans) {
    // The batch span processor exports every 5 s: give the last batch time to come.
    await new Promise((r) => setTimeout(r, 6000));
    const split = acceptSplit(spans.traces(), appAt, acceptedRuns);
    log(`accept→app split by hop, ms: mean over the ${split.typical} typical runs (accept→app ≤ its p90) / p99 over all ${split.runs} traced (${(splitRatio * 100).toFixed(0)} % of ${acceptedRuns.length} sampled)`);
    for (const h of split.hops) log(`  ${h.name.padEnd(48)} ${fmtMs(h.mean)} / ${fmtMs(h.p99)}`);
  }
  cpuWindow.servers = await servers.stop();
  await wire.close();
  cpuWindow.nats = [...onWire].sort((a, b) => b[1] - a[1]);
  const pgAfter = await commits();
  const done_ = Math.max(1, expected);
  for (const [name, ms] of Object.entries(cpuAfter)) {
    const was = cpuBefore[name] ?? NOTHING;
    cpuWindow[name] = Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, (v - was[k]) / done_]));
  }
  cpuWindow.pgCommits = (pgAfter - pgBefore) / done_;
  agent.destroy();
  if (idleSeconds > 0) {
    // As the bench's idle phase: no traffic, each service's CPU as a share of one core.
    log(`idle for ${idleSeconds} s from ${clock.now().toFixed(0)} ms (monotonic)`);
    const idleBefore = cpuOf(mesh.processes);
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idleAfter = cpuOf(mesh.processes);
    cpuWindow.idle = Object.entries(idleAfter).map(([name, c]) => {
      const was = idleBefore[name] ?? NOTHING;
      return [name, (100 * (c.user + c.system - was.user - was.system)) / (idleSeconds * 1000), (c.sleeps - was.sleeps) / idleSeconds];
    });
  }
} finally {
  await mesh.stop();
  appServer.close();
  hookServer.close();
  spans?.server.close();
  const nc = await connect({ servers: natsUrl.split(",") });
  const jsm = await jetstreamManager(nc);
  for (const s of ["DISPATCH", "EVENTS"]) await jsm.streams.delete(`${prefix.toUpperCase()}_${s}`).catch(() => false);
  await nc.close();
  await admin.query(`drop database if exists ${dbName} with (force)`);
  await admin.end();
}

for (const name of args["no-profile"] ? [] : ["scheduler", "invoker", "notifier", "ingress"]) {
  const dir = profDir(name);
  // The largest: the main thread's (the ESM loader hooks' thread writes a small one beside it).
  const files = fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((f) => f.endsWith(".cpuprofile"))
        .sort((a, b) => fs.statSync(path.join(dir, b)).size - fs.statSync(path.join(dir, a)).size)
    : [];
  if (files.length === 0) {
    console.log(`\n## ${name}: no profile written`);
    continue;
  }
  const summary = summariseProfile(JSON.parse(fs.readFileSync(path.join(dir, files[0]), "utf8")), top);
  console.log(`\n## ${name}: ${summary.totalMs.toFixed(0)} ms sampled, ${(summary.activeMs).toFixed(0)} ms busy (${((summary.activeMs / runs)).toFixed(2)} ms per run)`);
  console.log("self time by package:");
  for (const p of summary.packages.slice(0, 12)) console.log(`  ${p.pct.toFixed(1).padStart(5)} %  ${p.ms.toFixed(0).padStart(6)} ms  ${p.name}`);
  console.log("top frames by self time:");
  for (const f of summary.frames) console.log(`  ${f.pct.toFixed(1).padStart(5)} %  ${f.ms.toFixed(0).padStart(6)} ms  ${f.name}`);
}
console.log(
  `\n## CPU ms per run during the load (from /proc, start-up excluded${args["no-profile"] ? "" : "; profiler overhead included"}): total = user + system; per run: read and write system calls, and the main thread's context switches (sleeps: it waited for work; preempted: it had to give up its core)`,
);
const sum = { ...NOTHING };
const row = (label, c) =>
  `  ${label.padEnd(10)} ${(c.user + c.system).toFixed(2)} = ${c.user.toFixed(2)} + ${c.system.toFixed(2)}   reads ${c.reads.toFixed(1)}, writes ${c.writes.toFixed(1)}, sleeps ${c.sleeps.toFixed(1)}, preempted ${c.preempted.toFixed(1)}`;
for (const name of ["scheduler", "invoker", "notifier", "ingress"]) {
  const c = cpuWindow[name];
  if (c === undefined) continue;
  for (const k of Object.keys(sum)) sum[k] += c[k];
  console.log(row(name, c));
}
console.log(row("sum", sum));
const serverMs = Object.entries(cpuWindow.servers ?? {}).map(([name, s]) => [name, (s * 1000) / Math.max(1, runs - failed)]);
if (serverMs.length > 0) {
  const box = serverMs.reduce((t, [, ms]) => t + ms, sum.user + sum.system);
  console.log(`  ${serverMs.map(([name, ms]) => `${name} ${ms.toFixed(2)}`).join(", ")}; whole box ${box.toFixed(2)} (the services + these)`);
}
console.log(`  Postgres commits per run (its own database): ${cpuWindow.pgCommits?.toFixed(2)}`);
const perRun = (n) => (n / Math.max(1, runs - failed)).toFixed(2);
console.log(
  `  NATS messages per run under the mesh's prefix (JetStream acks and replies not counted): ${
    (cpuWindow.nats ?? []).map(([kind, n]) => `${kind} ${perRun(n)}`).join(", ") || "none"
  }`,
);
if (cpuWindow.idle) {
  console.log(`\n## Idle for ${idleSeconds} s after the load: CPU as % of one core${args["no-profile"] ? "" : " (profiler included)"}, and the main thread's wake-ups per second`);
  for (const [name, pct, wakeups] of cpuWindow.idle) console.log(`  ${name.padEnd(10)} ${pct.toFixed(2)} %   ${wakeups.toFixed(1)} wake-ups/s`);
}
if (!args["no-profile"]) console.log(`\nprofiles in ${outDir}`);
