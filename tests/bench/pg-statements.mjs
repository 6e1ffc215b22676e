#!/usr/bin/env node
// Usage: npm run bench:pg -- [--runs 800] [--unprepared] [--request-bytes N]
//
// What Postgres spends on one run's hot statements, alone: a database of its
// own (migrated, removed at the end), one connection, and per run the
// scheduler's own statements one after the other (no batching): the insert,
// the claim, the 2xx completion and the webhook state, plus `select 1` as the
// floor of a round trip. Prints the backend's CPU per run and per statement,
// read from /proc (Postgres on this machine), this process's (the client:
// pg encoding parameters, parsing rows), and the wall time of each
// statement's round trip, its commit included, with the statements prepared
// (as the services run them) or, with --unprepared, parsed and planned each
// time (LONGHAUL_PG_PREPARED_STATEMENTS=false). Figures are printed, never
// asserted. --request-bytes sets the stored request body's size (2: "{}";
// the bench's submits carry ~250 bytes and four headers). Runs under
// scripts/with-deps.mjs.
import fs from "node:fs";
import { randomBytes, randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import pg from "pg";
import pino from "pino";
import { sql } from "kysely";
import { createDb, migrate } from "../../services/shared/dist/db/index.js";
import { schedulerMigrationSet } from "../../services/scheduler/dist/adapters/pg/migrations.js";
import { batchedClaim, batchedInsert, batchedSuccess, batchedWebhookState } from "../../services/scheduler/dist/adapters/pg/batched.js";
import { summary } from "./lib/stats.mjs";

const { values: args } = parseArgs({
  options: { runs: { type: "string", default: "800" }, unprepared: { type: "boolean", default: false }, "request-bytes": { type: "string", default: "2" } },
});
const requestBytes = Math.max(2, Math.min(1 << 20, Number(args["request-bytes"])));
const runs = Math.max(10, Math.min(20_000, Number(args.runs)));
const base = process.env.DATABASE_URL;
if (!base) throw new Error("run under scripts/with-deps.mjs (npm run bench:pg)");

const name = `lh_pgstmt_${randomBytes(4).toString("hex")}`;
const admin = new pg.Client({ connectionString: base });
await admin.connect();
await admin.query(`create database ${name}`);
const url = new URL(base);
url.pathname = `/${name}`;
const log = pino({ level: "warn" });
const db = createDb({ url: url.toString(), log, poolSize: 1, prepare: !args.unprepared });
try {
  await migrate(db, schedulerMigrationSet, log);
  await sql`insert into projects (id) values ('p1')`.execute(db);
  await sql`insert into apps (project_id, name, url, timeout_seconds, max_concurrency, max_attempts, initial_backoff_seconds, max_backoff_seconds, idempotent, queue_ttl_seconds)
    values ('p1', 'a1', 'http://127.0.0.1:1', 60, 0, 1, 1, 10, false, 0)`.execute(db);
  const insert = batchedInsert(db);
  const claim = batchedClaim(db);
  const succeed = batchedSuccess(db);
  const webhook = batchedWebhookState(db);
  const { rows } = await sql`select pg_backend_pid() as pid`.execute(db);
  const pid = rows[0].pid;
  // utime + stime of the backend, in ms (clock ticks of 10 ms: figures are averages over many runs).
  const cpu = () => {
    const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  };
  const spent = {};
  const client = {};
  /** Wall ms of each call, by statement: the round trip with its commit. */
  const wall = {};
  const mine = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const step = async (k, f) => {
    const c = cpu();
    const m = mine();
    const t = performance.now();
    await f();
    (wall[k] ??= []).push(performance.now() - t);
    spent[k] = (spent[k] ?? 0) + cpu() - c;
    client[k] = (client[k] ?? 0) + mine() - m;
  };
  // `{"p":"…"}` is 8 bytes around its filler; at 2 (the default) the body is `{}`.
  const body = Buffer.from(requestBytes > 8 ? JSON.stringify({ p: "x".repeat(requestBytes - 8) }) : "{}");
  const headers =
    requestBytes > 2
      ? JSON.stringify([
          { name: "content-type", value: "application/json" },
          { name: "user-agent", value: "bench" },
          { name: "accept", value: "*/*" },
          { name: "traceparent", value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
        ])
      : "{}";
  const row = (id) => ({
    id, project_id: "p1", app: "a1", mode: "async", status: "dispatched", method: "POST", path: "/x", query: "",
    upstream_url: "http://127.0.0.1:1", request_headers: headers, request_body: body, webhook_url: "http://127.0.0.1:2/h",
    priority: 0, timeout_seconds: 60, max_attempts: 1, idempotency_key: null, retry_of: null, not_before: null,
    traceparent: "", tracestate: "", labels: "{}", expires_at: null,
  });
  const one = async () => {
    const id = randomUUID();
    await step("insert", () => insert(row(id)));
    await step("claim", () => claim({ runId: id, attempt: 1, invokerId: "inv1", leaseSeconds: 60 }));
    await step("complete (2xx)", () =>
      succeed({ runId: id, attempt: 1, owner: "inv1", result: { statusCode: 200, headers: {}, body: Buffer.from("{}"), bodyTruncated: false } }),
    );
    await step("webhook state", () => webhook({ runId: id, state: "delivered" }));
    await step("select 1", () => sql`select 1`.execute(db));
  };
  for (let i = 0; i < 50; i++) await one(); // warm: plans cached, pages in memory
  for (const k of Object.keys(spent)) delete spent[k];
  for (const k of Object.keys(client)) delete client[k];
  for (const k of Object.keys(wall)) delete wall[k];
  const c0 = cpu();
  const m0 = mine();
  for (let i = 0; i < runs; i++) await one();
  const total = cpu() - c0;
  const totalClient = mine() - m0;
  console.log(
    `CPU per run, ${runs} runs, statements ${args.unprepared ? "unprepared" : "prepared"}, request body ${body.length} bytes: ` +
      `Postgres backend ${(total / runs).toFixed(2)} ms, client ${(totalClient / runs).toFixed(2)} ms`,
  );
  console.log(`  ${"".padEnd(16)} backend   client    wall p50 / p99 (one after the other, nothing else running)`);
  for (const [k, v] of Object.entries(spent)) {
    const w = summary(wall[k]);
    console.log(`  ${k.padEnd(16)} ${(v / runs).toFixed(3)} ms  ${(client[k] / runs).toFixed(3)} ms  ${w.p50.toFixed(3)} / ${w.p99.toFixed(3)} ms`);
  }
} finally {
  await db.destroy();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
}
