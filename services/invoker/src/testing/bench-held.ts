/**
 * Where an invoker's memory per held call goes: a profiling aid, not the
 * benchmark (that is `npm run bench:held`, tests/bench/held/, against the
 * real mesh). Needs the built dist and the local NATS:
 *
 *   cd services/invoker && npx tsc -b ../shared . && npx tsx src/testing/bench-held.ts 2000 [--snapshot [--keep]]
 *
 * The built invoker (under otel-register, as in production) takes N
 * dispatches from a fresh stream prefix; an in-memory scheduler answers
 * ClaimRun at once, so the fill is fast; an app in this process holds every
 * call. Prints RSS per held call (delta over a warmed-up baseline) and, with
 * `--snapshot`, a heap snapshot diff (before / while holding) by constructor:
 * what each held call keeps alive. Then it answers them all and waits for
 * every CompleteRun. The invoker's log goes to /tmp/bench-invoker.log.
 */
import { spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { natsNames } from "@longhaul/shared/nats";
import { FakeSchedulerServer } from "./fake-scheduler-server.js";
import { heapGrowth } from "./heap-diff.js";

const N = Number(process.argv[2] ?? 2000);
const SNAPSHOT = process.argv.includes("--snapshot");
const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const TOKEN = "bench-internal-token-0123456789";
const PREFIX = `bench_${Date.now()}`;
const WARMUP = 200;
const snapDir = mkdtempSync(join(tmpdir(), "invoker-heap-"));

const held: ServerResponse[] = [];
let quick = 0;
const app = createServer((req, res) => {
  req.resume();
  if (req.url?.startsWith("/quick")) {
    quick += 1;
    res.end("ok");
  } else held.push(res);
});
app.requestTimeout = 0;
await new Promise<void>((r) => app.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, r));
const base = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
const scheduler = new FakeSchedulerServer(TOKEN);
const schedulerAddr = await scheduler.start();

const inv = spawn(
  process.execPath,
  [
    ...(SNAPSHOT ? ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${snapDir}`] : []),
    // e.g. BENCH_INVOKER_FLAGS=--trace-gc (not allowed in NODE_OPTIONS); the output lands in the log.
    ...(process.env.BENCH_INVOKER_FLAGS ?? "").split(" ").filter(Boolean),
    "--import",
    "@longhaul/shared/otel-register",
    fileURLToPath(new URL("../../dist/main.js", import.meta.url)),
  ],
  {
    cwd: fileURLToPath(new URL("../..", import.meta.url)),
    env: {
      ...process.env,
      LONGHAUL_INTERNAL_TOKEN: TOKEN,
      SCHEDULER_ADDR: schedulerAddr,
      NATS_URL,
      LONGHAUL_NATS_PREFIX: PREFIX,
      INVOKER_GRPC_HOST: "127.0.0.1",
      INVOKER_GRPC_PORT: "0",
      INVOKER_METRICS_HOST: "127.0.0.1",
      INVOKER_METRICS_PORT: "0",
      INVOKER_HEARTBEAT_MS: "2000",
      INVOKER_MAX_IN_FLIGHT: String(N + WARMUP),
    },
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
  },
);
const killInvoker = () => {
  try {
    process.kill(-inv.pid!, "SIGKILL");
  } catch {
    // already gone
  }
};
process.on("exit", () => {
  killInvoker();
  // --keep leaves the two snapshots for Chrome DevTools (Memory → Load, then Comparison).
  if (process.argv.includes("--keep")) console.log(`snapshots kept in ${snapDir}`);
  else rmSync(snapDir, { recursive: true, force: true });
});
process.on("SIGTERM", () => process.exit(1));
process.on("SIGINT", () => process.exit(1));

await new Promise<void>((resolve) => {
  const log = createWriteStream("/tmp/bench-invoker.log");
  let head = "";
  inv.stdout!.on("data", (d: Buffer) => {
    log.write(d);
    if (head.length < 100_000) head += d.toString();
    if (head.includes('"msg":"ready"')) resolve();
  });
});

const nc = await connect({ servers: NATS_URL });
const js = jetstream(nc);
const names = natsNames(PREFIX);
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${inv.pid}/status`, "utf8"))![1]) * 1024;

/** Asks the invoker for a heap snapshot and waits until the file is complete. */
async function snapshot(): Promise<string> {
  const before = new Set(readdirSync(snapDir));
  process.kill(inv.pid!, "SIGUSR2");
  for (;;) {
    await wait(500);
    const file = readdirSync(snapDir).find((f) => !before.has(f) && f.endsWith(".heapsnapshot"));
    // Written synchronously on the invoker's main thread: complete once its /metrics answers again.
    if (file && (await fetch(metricsUrl).then(() => true, () => false))) return join(snapDir, file);
  }
}

/** The invoker's /metrics, first series of each name. */
async function scrape(): Promise<Record<string, number>> {
  const text = await (await fetch(metricsUrl)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^([a-zA-Z0-9_:]+)(?:\{[^}]*\})? (\S+)$/gm)) out[m[1]!] ??= Number(m[2]);
  return out;
}

async function dispatch(runId: string, path: string): Promise<void> {
  scheduler.add({ runId, attempt: 1, url: `${base}${path}`, timeoutMs: 600_000 });
  await js.publish(names.dispatch("dev", "bench"), JSON.stringify({ run_id: runId, attempt: 1 }), { msgID: `${runId}:1` });
}

const metricsPort = Number(/"metrics_port":(\d+)/.exec(readFileSync("/tmp/bench-invoker.log", "utf8"))?.[1]);
const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
try {
  // Warm-up: code compiled, connections made, before the baseline.
  for (let i = 0; i < WARMUP; i++) await dispatch(`w${i}`, `/quick/w${i}`);
  while (scheduler.completions.length < WARMUP) await wait(50);
  await wait(3000);
  const rssBase = rss();
  const snapBefore = SNAPSHOT ? await snapshot() : "";

  const t0 = Date.now();
  for (let i = 0; i < N; i++) await dispatch(`b${i}`, `/hold/b${i}`);
  while (held.length < N) await wait(50);
  const tHeld = Date.now();
  await wait(5_000); // a couple of heartbeats while everything is held
  const rssHeld = rss();
  // Event-loop delay while holding: prom-client resets its histogram at each scrape.
  await scrape();
  await wait(10_000);
  const lag = await scrape();
  const snapAfter = SNAPSHOT ? await snapshot() : "";
  const tAnswer = Date.now();
  for (const res of held) res.end("done");
  while (scheduler.completions.length < WARMUP + N) await wait(50);
  console.log(
    JSON.stringify({
      n: N,
      all_held_ms: tHeld - t0,
      rss_base_mb: Math.round(rssBase / 2 ** 20),
      rss_holding_mb: Math.round(rssHeld / 2 ** 20),
      rss_per_held_call_kb: Math.round((rssHeld - rssBase) / N / 102.4) / 10,
      event_loop_p99_ms: Math.round((lag.nodejs_eventloop_lag_p99_seconds ?? NaN) * 1000),
      event_loop_max_ms: Math.round((lag.nodejs_eventloop_lag_max_seconds ?? NaN) * 1000),
      heartbeat_calls: scheduler.heartbeats.length,
      all_completed_after_answer_ms: Date.now() - tAnswer,
    }),
  );
  if (SNAPSHOT) console.log(heapGrowth(snapBefore, snapAfter, N));
} finally {
  killInvoker();
  const jsm = await jetstreamManager(nc);
  await jsm.streams.delete(names.dispatchStream).catch(() => false);
  await jsm.streams.delete(names.eventsStream).catch(() => false);
  await nc.close();
  await scheduler.stop();
  app.closeAllConnections();
  app.close();
}
process.exit(0);
