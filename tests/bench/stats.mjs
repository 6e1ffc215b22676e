#!/usr/bin/env node
// Usage: npm run bench:stats -- [--runs 1000000] [--reads 30] [--keep] [--db NAME]
//
// How long GET /v1/stats takes Postgres on a large project. Fills a database
// of its own with `--runs` finished runs spread over the last 7 days (95 % in
// project `dev`, five apps, a tenth of them sync calls, a third of the async
// ones with a webhook), folds them into the rollup as the scheduler does
// (timed), then times the scheduler's stats statement (`readRunStats`, the
// one query a GetRunStats call makes) `--reads` times per window, for all
// apps and for one app, and prints median, p95 and max. Before the rollup it
// also times one read of each window straight from the runs: what a read
// costs while the rollup catches up after an upgrade. Figures are printed,
// never asserted. Runs under scripts/with-deps.mjs (DATABASE_URL). `--keep`
// keeps the database; `--db NAME` times the reads again on a kept one
// (folding in first whatever the rollup has not seen), without filling it.
import { parseArgs } from "node:util";
import pg from "pg";
import { createLogger } from "@longhaul/shared/logger";
import { createDb, ensureDatabase, migrate } from "@longhaul/shared/db";
import { schedulerMigrationSet } from "@longhaul/scheduler/adapters/pg/migrations";
import { readRunStats, rollUpRunStats } from "@longhaul/scheduler/adapters/pg/run-stats";
import { STATS_WINDOWS } from "@longhaul/scheduler/core/run-stats";

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "1000000" },
    reads: { type: "string", default: "30" },
    keep: { type: "boolean", default: false },
    db: { type: "string" },
  },
});
const RUNS = Number(args.runs);
const READS = Number(args.reads);
const base = process.env.DATABASE_URL;
if (!base) throw new Error("DATABASE_URL is not set: run through `npm run bench:stats`");

const reuse = args.db !== undefined;
const name = args.db ?? `lh_bench_stats_${process.pid}`;
const url = new URL(base);
url.pathname = `/${name}`;
const log = createLogger("bench-stats", "warn");
await ensureDatabase(url.toString());
const db = createDb({ url: url.toString(), log, poolSize: 4 });
const raw = new pg.Client({ connectionString: url.toString() });
await raw.connect();

const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)];
const fmt = (x) => x.toFixed(1).padStart(7);

try {
  await migrate(db, schedulerMigrationSet, log);
  const settings = await raw.query(
    "select version(), current_setting('shared_buffers') sb, current_setting('work_mem') wm, current_setting('max_parallel_workers_per_gather') par",
  );
  const s = settings.rows[0];
  console.log(`${s.version.split(",")[0]}; shared_buffers ${s.sb}, work_mem ${s.wm}, max_parallel_workers_per_gather ${s.par}`);
  console.log(`load average before: ${(await import("node:os")).loadavg().map((x) => x.toFixed(2)).join(" ")}`);

  let t0 = process.hrtime.bigint();
  if (!reuse) await fill();
  const windows = Object.keys(STATS_WINDOWS);
  const query = (window, app) => ({ project: "dev", app, mode: undefined, ...STATS_WINDOWS[window] });

  if (!reuse) {
    console.log("\nbefore the rollup (every run read; what a read costs while the rollup catches up):");
    for (const w of windows) {
      t0 = process.hrtime.bigint();
      const res = await readRunStats(db, query(w, undefined), new Date(), undefined);
      const total = res.buckets.reduce((n, b) => n + b.succeeded + b.failed + b.timedOut + b.cancelled + b.expired, 0);
      console.log(`  ${w.padEnd(4)} all apps: ${fmt(ms(t0))} ms (${total} runs in the window)`);
    }
  }

  t0 = process.hrtime.bigint();
  let passes = 0;
  let rolled = new Date(0);
  for (;;) {
    const to = await rollUpRunStats(db);
    passes++;
    if (to.getTime() === rolled.getTime()) break;
    rolled = to;
  }
  const rows = (await raw.query("select bucket_seconds, count(*)::int n from run_stats group by 1 order by 1")).rows;
  console.log(
    `\nrollup caught up in ${(ms(t0) / 1000).toFixed(1)} s (${passes} passes of at most 2 h each); rows: ${rows
      .map((r) => `${r.n} of ${r.bucket_seconds} s`)
      .join(", ")}`,
  );
  // Catching up wrote and deleted many minute rows: let the table settle as autovacuum would.
  await raw.query("vacuum analyze run_stats");
  t0 = process.hrtime.bigint();
  await rollUpRunStats(db);
  console.log(`a steady-state pass with nothing new: ${ms(t0).toFixed(1)} ms`);

  console.log(`\nGET /v1/stats statement after the rollup, ${READS} reads each (ms):`);
  console.log("  window  filter      median      p95      max   runs in window");
  for (const w of windows) {
    for (const app of [undefined, "app-1"]) {
      const times = [];
      let total = 0;
      for (let i = 0; i < READS; i++) {
        t0 = process.hrtime.bigint();
        const res = await readRunStats(db, query(w, app), new Date(), rolled);
        times.push(ms(t0));
        total = res.buckets.reduce((n, b) => n + b.succeeded + b.failed + b.timedOut + b.cancelled + b.expired, 0);
      }
      console.log(
        `  ${w.padEnd(6)}  ${(app ?? "all apps").padEnd(9)} ${fmt(pct(times, 50))}  ${fmt(pct(times, 95))}  ${fmt(Math.max(...times))}   ${total}`,
      );
    }
  }
  console.log(`load average after: ${(await import("node:os")).loadavg().map((x) => x.toFixed(2)).join(" ")}`);
} finally {
  await raw.end();
  await db.destroy();
  if (!args.keep && !reuse) {
    const admin = new pg.Client({ connectionString: base });
    await admin.connect();
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  } else {
    console.log(`kept database ${name}`);
  }
}

/** Fills the database: RUNS ended runs over 7 days, and some in flight and queued. */
async function fill() {
  const t0 = process.hrtime.bigint();
  await raw.query("insert into projects (id) values ('dev'), ('other') on conflict do nothing");
  for (let i = 0; i < 5; i++) {
    await raw.query(
      `insert into apps (project_id, name, url, timeout_seconds, max_concurrency, max_attempts, initial_backoff_seconds,
         max_backoff_seconds, idempotent, queue_ttl_seconds) values ('dev', $1, 'http://127.0.0.1:1', 600, 0, 3, 1, 300, false, 0)`,
      [`app-${i}`],
    );
  }
  // Outcomes 85 % succeeded, 8 % failed, 3 % timed out, 2 % cancelled, 2 % expired; queue waits
  // e^U(0,8) ms (1 ms..3 s), durations e^U(0,12) ms (1 ms..2.7 min); runs that never started
  // (expired, and cancelled ones) have neither.
  const batch = 100_000;
  for (let from = 0; from < RUNS; from += batch) {
    const n = Math.min(batch, RUNS - from);
    await raw.query(
      `with g as (
         select i, now() - random() * interval '7 days' as fin, random() as r, random() as w,
                exp(random() * 8) as wait_ms, exp(random() * 12) as run_ms
         from generate_series(1, $1::int) as i
       ), s as (
         select *, case when r < 0.85 then 'succeeded' when r < 0.93 then 'failed' when r < 0.96 then 'timed_out'
                        when r < 0.98 then 'cancelled' else 'expired' end as status,
                   case when i % 10 = 0 then 'sync' else 'async' end as mode
         from g
       ), t as (
         select *, case when status in ('cancelled', 'expired') then null else fin - run_ms * interval '1 ms' end as started
         from s
       )
       insert into runs (id, project_id, app, mode, status, method, path, upstream_url, timeout_seconds, max_attempts,
                         webhook_url, webhook_state, webhook_settled_at, created_at, started_at, finished_at, status_code)
       select gen_random_uuid(), case when i % 20 = 0 then 'other' else 'dev' end, 'app-' || (i % 5), mode, status,
              'POST', '/predict', 'http://127.0.0.1:1', 600, 3,
              case when mode = 'async' and w < 0.33 then 'http://hooks.example/h' end,
              case when mode = 'async' and w < 0.33 then (case when w < 0.31 then 'delivered' else 'failed' end) else 'none' end,
              case when mode = 'async' and w < 0.33 then fin + w * interval '10 s' end,
              coalesce(started, fin) - wait_ms * interval '1 ms', started, fin,
              case when status = 'succeeded' then 200 when status = 'failed' then 500 end
       from t`,
      [n],
    );
    process.stdout.write(`\rinserted ${from + n} runs`);
  }
  // Work in progress: the overview's gauges.
  await raw.query(
    `insert into runs (id, project_id, app, mode, status, method, path, upstream_url, timeout_seconds, max_attempts, created_at, started_at)
     select gen_random_uuid(), 'dev', 'app-' || (i % 5), 'async', case when i <= 100 then 'running' else 'queued' end,
            'POST', '/predict', 'http://127.0.0.1:1', 600, 3, now(), case when i <= 100 then now() end
     from generate_series(1, 1100) as i`,
  );
  await raw.query("vacuum analyze runs");
  console.log(`\nfilled ${RUNS} runs (+1,100 in flight or queued) in ${(ms(t0) / 1000).toFixed(1)} s`);
}
