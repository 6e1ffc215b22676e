/**
 * Measures one invoker process holding N calls at once (not part of the build
 * or of `npm test`). Needs the built dist and the local NATS:
 *
 *   cd services/invoker && npx tsc -b ../shared . && npx tsx src/testing/bench-held.ts 5000
 *
 * Publishes N dispatches to a fresh prefix, the in-memory scheduler answers
 * ClaimRun, an app in this process holds every call; once all are held it
 * answers them all and waits for every CompleteRun. Prints one JSON line.
 * The invoker's log goes to /tmp/bench-invoker.log.
 */
import { spawn } from "node:child_process";
import { createWriteStream, readFileSync } from "node:fs";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { natsNames } from "@longhaul/shared";
import { FakeSchedulerServer } from "./fake-scheduler-server.js";

const N = Number(process.argv[2] ?? 5000);
const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const TOKEN = "bench-internal-token-0123456789";
const PREFIX = `bench_${Date.now()}`;

const held: ServerResponse[] = [];
const app = createServer((req, res) => {
  req.resume();
  held.push(res);
});
app.requestTimeout = 0;
// A deep accept backlog: N connections arrive at once.
await new Promise<void>((r) => app.listen({ port: 0, host: "127.0.0.1", backlog: 16_384 }, r));
const base = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
const scheduler = new FakeSchedulerServer(TOKEN);
const schedulerAddr = await scheduler.start();

const inv = spawn(process.execPath, ["--import", "@longhaul/shared/otel-register", fileURLToPath(new URL("../../dist/main.js", import.meta.url))], {
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
  },
  stdio: ["ignore", "pipe", "inherit"],
  detached: true,
});
const killInvoker = () => {
  try {
    process.kill(-inv.pid!, "SIGKILL");
  } catch {
    // already gone
  }
};
process.on("exit", killInvoker);
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
const t0 = Date.now();
const progress = setInterval(
  () =>
    console.error(
      JSON.stringify({ s: Math.round((Date.now() - t0) / 1000), claims: scheduler.claims.length, held: held.length, completed: scheduler.completions.length }),
    ),
  2000,
);
try {
  for (let i = 0; i < N; i++) {
    const runId = `b${i}`;
    scheduler.add({ runId, attempt: 1, url: `${base}/hold/${runId}`, timeoutMs: 600_000 });
    await js.publish(names.dispatch("dev", "bench"), JSON.stringify({ run_id: runId, attempt: 1 }), { msgID: `${runId}:1` });
  }
  const tPublished = Date.now();
  while (held.length < N) await wait(50);
  const tHeld = Date.now();
  const rssMb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${inv.pid}/status`, "utf8"))![1]) / 1024;
  await wait(4_000); // a couple of heartbeats while everything is held
  const heartbeatRuns = scheduler.heartbeats.at(-1)?.runs.length ?? 0;
  const tAnswer = Date.now();
  for (const res of held) res.end("done");
  while (scheduler.completions.length < N) await wait(50);
  const tDone = Date.now();
  console.log(
    JSON.stringify({
      n: N,
      publish_ms: tPublished - t0,
      all_held_ms: tHeld - t0,
      invoker_rss_mb_holding_all: Math.round(rssMb),
      last_heartbeat_runs: heartbeatRuns,
      all_completed_after_answer_ms: tDone - tAnswer,
      claims: scheduler.claims.length,
    }),
  );
} finally {
  clearInterval(progress);
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
