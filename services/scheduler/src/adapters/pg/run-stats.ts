import { sql, type Kysely, type RawBuilder } from "kysely";
import { STATS_LEVELS, type StatsBucket, type StatsQuery, type StatsResult } from "../../core/run-stats.js";
import type { SchedulerDb } from "./schema.js";

/*
 * The overview's figures (GET /v1/stats) without reading every run.
 *
 * A rollup folds finished runs into rows of run_stats at three levels:
 * 60 s, 15 min and 2 h (the bucket sizes of the 1h, 24h and 7d windows).
 * Each bucket has a row per app and mode, and rows summing every app, both
 * modes, or both ('*'), so a read takes one row per bucket whatever it
 * filters on. A row holds counts by outcome, webhooks settled, histograms
 * of queue wait and run duration and their percentiles. A read takes, for
 * each bucket of its window, the row of its own level when that bucket is
 * complete (as it is); for the current bucket, finer rows for its part
 * that is rolled up and the runs themselves for the seconds past the
 * rollup, their histograms added up: one statement, whatever the number of
 * runs.
 *
 * Percentiles come from histograms with bins 10 % wide, the way Prometheus
 * and HdrHistogram summarise latencies: a percentile is exact to within its
 * bin (interpolated linearly inside it), and histograms of several rows add
 * up, which percentiles do not.
 */

/** Upper bound of histogram bin k (k >= 1) is STATS_BIN_GROWTH^k ms; bin 0 holds [0, 1) ms. */
export const STATS_BIN_GROWTH = 1.1;

/** How long each level's rows are kept past the rolled-up time (reads need 1 h of minutes, 24 h of quarters, 7 d of 2-hour rows, plus a current coarse bucket). */
const RETENTION_SECONDS: Record<number, number> = { 60: 3 * 3600, 900: 26 * 3600, 7200: 8 * 86_400 };

/** The rollup leaves this much recent time to the raw read, so that a transaction still committing is never missed. */
export const ROLLUP_MARGIN_SECONDS = 30;
/** At most this much time is folded per pass (catching up after an upgrade goes in steps). */
const ROLLUP_CHUNK_SECONDS = 7200;

const ln = Math.log(STATS_BIN_GROWTH);

/** `to_timestamp(floor(epoch / s) * s)`: the start of the `s`-second bucket holding `expr`. */
function floorTo(expr: RawBuilder<unknown>, seconds: number): RawBuilder<Date> {
  return sql<Date>`to_timestamp(floor(extract(epoch from ${expr}) / ${sql.lit(seconds)}) * ${sql.lit(seconds)})`;
}

/** The histogram bin of a duration in ms (SQL). */
function binOf(ms: RawBuilder<unknown>): RawBuilder<number> {
  return sql<number>`(case when ${ms} < 1 then 0 else floor(ln(${ms}) / ${sql.lit(ln)})::int + 1 end)`;
}

const epochSeconds = (d: Date) => Math.floor(d.getTime() / 1000);
const floorDate = (d: Date, seconds: number) => new Date(Math.floor(epochSeconds(d) / seconds) * seconds * 1000);

/**
 * Folds runs finished (and webhooks settled) since the last pass into
 * run_stats. One pass at a time across every scheduler: the progress row is
 * locked with SKIP LOCKED, so a second scheduler skips the pass. Returns how
 * far the rollup has gone (read, when another scheduler holds the lock).
 */
export async function rollUpRunStats(db: Kysely<SchedulerDb>): Promise<Date> {
  return db.transaction().execute(async (trx) => {
    // The first pass starts at the oldest finished run (at most 8 days back), or now.
    await sql`
      insert into run_stats_progress (id, rolled_until)
      select 1, to_timestamp(floor(extract(epoch from least(
        greatest(coalesce((select min(finished_at) from runs where finished_at is not null), now()), now() - interval '8 days'),
        now() - make_interval(secs => ${ROLLUP_MARGIN_SECONDS})
      )) / 7200) * 7200)
      on conflict (id) do nothing`.execute(trx);
    const locked = await sql<{ rolled_until: Date; now: Date }>`
      select rolled_until, now() as now from run_stats_progress where id = 1 for update skip locked`.execute(trx);
    const row = locked.rows[0];
    if (!row) {
      const seen = await sql<{ rolled_until: Date }>`select rolled_until from run_stats_progress where id = 1`.execute(trx);
      return seen.rows[0]!.rolled_until;
    }
    const from = row.rolled_until;
    const until = floorDate(new Date(row.now.getTime() - ROLLUP_MARGIN_SECONDS * 1000), 60);
    const to = new Date(Math.min(until.getTime(), from.getTime() + ROLLUP_CHUNK_SECONDS * 1000));
    if (to.getTime() <= from.getTime()) return from;
    for (const level of STATS_LEVELS) {
      // Buckets of this level that are complete now and were not before: [floor(from), floor(to)).
      const hi = floorDate(to, level);
      const oldest = new Date(to.getTime() - RETENTION_SECONDS[level]! * 1000);
      const lo = new Date(Math.max(floorDate(from, level).getTime(), floorDate(oldest, level).getTime()));
      if (hi.getTime() > lo.getTime()) await foldLevel(trx, level, lo, hi);
      await sql`delete from run_stats where bucket_seconds = ${level} and bucket_start < ${oldest}::timestamptz`.execute(trx);
    }
    await sql`update run_stats_progress set rolled_until = ${to}::timestamptz where id = 1`.execute(trx);
    return to;
  });
}

/** Every app and mode, each app, each mode, and the whole project: the rows a read takes one of. */
const GROUPINGS = (keys: string) =>
  sql.raw(`grouping sets ((${keys}, app, mode), (${keys}, app), (${keys}, mode), (${keys}))`);

/**
 * Writes the `level` rows of the buckets in [lo, hi) from the runs
 * themselves (idempotent): one per app and mode, and the sums over apps,
 * modes and both ('*'), so that a read takes one row per complete bucket
 * whatever it filters on.
 */
async function foldLevel(db: Kysely<SchedulerDb>, level: number, lo: Date, hi: Date): Promise<void> {
  const b = (col: string) => floorTo(sql.ref(col), level);
  await sql`
    with fin as (
      select ${b("finished_at")} as b, project_id, app, mode, status,
             extract(epoch from started_at - created_at) * 1000 as wait_ms,
             extract(epoch from finished_at - started_at) * 1000 as run_ms
      from runs where finished_at >= ${lo}::timestamptz and finished_at < ${hi}::timestamptz
    ),
    wh as (
      select ${b("webhook_settled_at")} as b, project_id, app, mode, webhook_state
      from runs where webhook_settled_at >= ${lo}::timestamptz and webhook_settled_at < ${hi}::timestamptz
    ),
    counts as (
      select b, project_id, coalesce(app, '*') as app, coalesce(mode, '*') as mode,
             count(*) filter (where status = 'succeeded') as succeeded,
             count(*) filter (where status = 'failed') as failed,
             count(*) filter (where status = 'timed_out') as timed_out,
             count(*) filter (where status = 'cancelled') as cancelled,
             count(*) filter (where status = 'expired') as expired
      from fin group by ${GROUPINGS("b, project_id")}
    ),
    hooks as (
      select b, project_id, coalesce(app, '*') as app, coalesce(mode, '*') as mode,
             count(*) filter (where webhook_state = 'delivered') as delivered,
             count(*) filter (where webhook_state = 'failed') as failed
      from wh group by ${GROUPINGS("b, project_id")}
    ),
    measures as (
      select b, project_id, app, mode, 'q' as m, ${binOf(sql.ref("wait_ms"))} as bin from fin where wait_ms is not null
      union all
      select b, project_id, app, mode, 'r', ${binOf(sql.ref("run_ms"))} from fin where run_ms is not null
    ),
    bins as (
      select b, project_id, coalesce(app, '*') as app, coalesce(mode, '*') as mode, m, bin, count(*)::int as n
      from measures group by ${GROUPINGS("b, project_id, m, bin")}
    ),
    hist as (
      select b, project_id, app, mode, m, array_agg(bin order by bin) as bins, array_agg(n order by bin) as ns
      from bins group by 1, 2, 3, 4, 5
    ),
    weights as (select b, project_id, app, mode, m, bin, n::float8 as n from bins),
    ${percentileCtes("f", "weights", "b, project_id, app, mode")},
    keys as (
      select b, project_id, app, mode from counts union select b, project_id, app, mode from hooks
    )
    insert into run_stats (project_id, bucket_seconds, bucket_start, app, mode, succeeded, failed, timed_out, cancelled, expired,
                           webhook_delivered, webhook_failed, queue_wait_bins, queue_wait_counts, run_bins, run_counts,
                           queue_wait_p50_ms, queue_wait_p95_ms, run_p50_ms, run_p95_ms)
    select k.project_id, ${level}, k.b, k.app, k.mode,
           coalesce(c.succeeded, 0), coalesce(c.failed, 0), coalesce(c.timed_out, 0), coalesce(c.cancelled, 0), coalesce(c.expired, 0),
           coalesce(w.delivered, 0), coalesce(w.failed, 0),
           coalesce(q.bins, '{}'), coalesce(q.ns, '{}'), coalesce(r.bins, '{}'), coalesce(r.ns, '{}'),
           q50.v, q95.v, r50.v, r95.v
    from keys k
    left join counts c using (b, project_id, app, mode)
    left join hooks w using (b, project_id, app, mode)
    left join hist q on q.m = 'q' and q.b = k.b and q.project_id = k.project_id and q.app = k.app and q.mode = k.mode
    left join hist r on r.m = 'r' and r.b = k.b and r.project_id = k.project_id and r.app = k.app and r.mode = k.mode
    left join f_p50 q50 on q50.m = 'q' and (q50.b, q50.project_id, q50.app, q50.mode) = (k.b, k.project_id, k.app, k.mode)
    left join f_p95 q95 on q95.m = 'q' and (q95.b, q95.project_id, q95.app, q95.mode) = (k.b, k.project_id, k.app, k.mode)
    left join f_p50 r50 on r50.m = 'r' and (r50.b, r50.project_id, r50.app, r50.mode) = (k.b, k.project_id, k.app, k.mode)
    left join f_p95 r95 on r95.m = 'r' and (r95.b, r95.project_id, r95.app, r95.mode) = (k.b, k.project_id, k.app, k.mode)
    on conflict (project_id, bucket_seconds, bucket_start, app, mode) do update set
      succeeded = excluded.succeeded, failed = excluded.failed, timed_out = excluded.timed_out,
      cancelled = excluded.cancelled, expired = excluded.expired,
      webhook_delivered = excluded.webhook_delivered, webhook_failed = excluded.webhook_failed,
      queue_wait_bins = excluded.queue_wait_bins, queue_wait_counts = excluded.queue_wait_counts,
      run_bins = excluded.run_bins, run_counts = excluded.run_counts,
      queue_wait_p50_ms = excluded.queue_wait_p50_ms, queue_wait_p95_ms = excluded.queue_wait_p95_ms,
      run_p50_ms = excluded.run_p50_ms, run_p95_ms = excluded.run_p95_ms`.execute(db);
}

/**
 * Which rollup rows a read of `bucketSeconds` buckets takes (SQL condition
 * on run_stats `s` and the rolled-up time `wm`): its own level's complete
 * buckets; of each finer level, the complete buckets whose next coarser
 * bucket is not complete yet.
 */
function rolledRows(bucketSeconds: number): RawBuilder<boolean> {
  const levels = STATS_LEVELS.filter((l) => l <= bucketSeconds);
  const parts = levels.map((level, i) => {
    const complete = sql`s.bucket_seconds = ${sql.lit(level)} and s.bucket_start + ${sql.lit(`${level} seconds`)}::interval <= p.wm`;
    const next = levels[i + 1];
    if (next === undefined) return complete;
    return sql`(${complete} and ${floorTo(sql`s.bucket_start`, next)} + ${sql.lit(`${next} seconds`)}::interval > p.wm)`;
  });
  return sql<boolean>`(${sql.join(parts, sql` or `)})`;
}

/**
 * CTEs `<name>_p50` and `<name>_p95` over a histogram relation `source`
 * (`keys..., m, bin, n`): per `keys, m`, the value at that rank, linear
 * inside its bin, in ms. The fold and the read share it, so a bucket reads
 * the same whether it is rolled up or not.
 */
function percentileCtes(name: string, source: string, keys: string): RawBuilder<unknown> {
  const g = STATS_BIN_GROWTH;
  const value = (p: number) =>
    `lo + (hi - lo) * ((${p} * total - (upto - n)) / n)`;
  return sql.raw(`
    ${name}_cum as (
      select ${keys}, m, n,
             case when bin = 0 then 0 else power(${g}::float8, bin - 1) end as lo, power(${g}::float8, bin) as hi,
             sum(n) over (partition by ${keys}, m order by bin) as upto, sum(n) over (partition by ${keys}, m) as total, bin
      from ${source}
    ),
    ${name}_p50 as (
      select distinct on (${keys}, m) ${keys}, m, ${value(0.5)} as v from ${name}_cum where upto >= 0.5 * total order by ${keys}, m, bin
    ),
    ${name}_p95 as (
      select distinct on (${keys}, m) ${keys}, m, ${value(0.95)} as v from ${name}_cum where upto >= 0.95 * total order by ${keys}, m, bin
    )`);
}

/**
 * A window of figures in one statement: rollup rows, the runs past the
 * rollup, and the project's calls in flight and queued now. `rolledHint` is
 * a rolled-up time seen earlier (it only grows): the statement reads the
 * real one itself, the hint only lets the planner see how few runs lie past
 * it.
 */
export async function readRunStats(db: Kysely<SchedulerDb>, q: StatsQuery, now: Date, rolledHint: Date | undefined): Promise<StatsResult> {
  const B = q.bucketSeconds;
  const last = floorDate(now, B);
  const start = new Date(last.getTime() - (q.buckets - 1) * B * 1000);
  const rawFrom = rolledHint && rolledHint.getTime() > start.getTime() ? rolledHint : start;
  const runFilter = sql.join(
    [
      sql`project_id = ${q.project}`,
      ...(q.app !== undefined ? [sql`app = ${q.app}`] : []),
      ...(q.mode !== undefined ? [sql`mode = ${q.mode}`] : []),
    ],
    sql` and `,
  );
  // One rollup row per bucket: the app's (or '*', every app's) of the mode asked for (or '*').
  const statsFilter = sql`s.project_id = ${q.project} and s.app = ${q.app ?? "*"} and s.mode = ${q.mode ?? "*"}`;
  const bucket = (col: string) => floorTo(sql.ref(col), B);
  const rows = await sql<{
    start: Date;
    succeeded: number;
    failed: number;
    timed_out: number;
    cancelled: number;
    expired: number;
    webhook_delivered: number;
    webhook_failed: number;
    q50: number | null;
    q95: number | null;
    r50: number | null;
    r95: number | null;
    in_flight: number;
    queued: number;
    app_exists: boolean;
  }>`
    with p as (
      select coalesce((select rolled_until from run_stats_progress where id = 1), '-infinity'::timestamptz) as wm
    ),
    rolled as (
      select ${floorTo(sql`s.bucket_start`, B)} as b, s.bucket_seconds = ${B} as whole,
             s.succeeded, s.failed, s.timed_out, s.cancelled, s.expired, s.webhook_delivered, s.webhook_failed,
             s.queue_wait_bins, s.queue_wait_counts, s.run_bins, s.run_counts,
             s.queue_wait_p50_ms, s.queue_wait_p95_ms, s.run_p50_ms, s.run_p95_ms
      from run_stats s, p
      where ${statsFilter} and s.bucket_seconds <= ${B} and s.bucket_start >= ${start}::timestamptz and ${rolledRows(B)}
    ),
    fin as (
      select ${bucket("finished_at")} as b, status,
             extract(epoch from started_at - created_at) * 1000 as wait_ms,
             extract(epoch from finished_at - started_at) * 1000 as run_ms
      from runs, p
      where finished_at >= ${rawFrom}::timestamptz and finished_at >= p.wm and finished_at >= ${start}::timestamptz and ${runFilter}
    ),
    wh as (
      select ${bucket("webhook_settled_at")} as b, webhook_state
      from runs, p
      where webhook_settled_at >= ${rawFrom}::timestamptz and webhook_settled_at >= p.wm
        and webhook_settled_at >= ${start}::timestamptz and ${runFilter}
    ),
    counts as (
      select b, sum(succeeded)::int as succeeded, sum(failed)::int as failed, sum(timed_out)::int as timed_out,
             sum(cancelled)::int as cancelled, sum(expired)::int as expired,
             sum(webhook_delivered)::int as webhook_delivered, sum(webhook_failed)::int as webhook_failed
      from (
        select b, succeeded, failed, timed_out, cancelled, expired, webhook_delivered, webhook_failed from rolled
        union all
        select b, (status = 'succeeded')::int, (status = 'failed')::int, (status = 'timed_out')::int,
               (status = 'cancelled')::int, (status = 'expired')::int, 0, 0 from fin
        union all
        select b, 0, 0, 0, 0, 0, (webhook_state = 'delivered')::int, (webhook_state = 'failed')::int from wh
      ) x group by b
    ),
    -- A whole bucket's percentiles are in its row; the current one's come from its parts' histograms.
    whole as (select * from rolled where whole),
    parts as (
      select b, 'q' as m, u.bin, u.n from rolled, unnest(queue_wait_bins, queue_wait_counts) as u(bin, n) where not whole
      union all select b, 'r', u.bin, u.n from rolled, unnest(run_bins, run_counts) as u(bin, n) where not whole
      union all select b, 'q', ${binOf(sql.ref("wait_ms"))}, 1 from fin where wait_ms is not null
      union all select b, 'r', ${binOf(sql.ref("run_ms"))}, 1 from fin where run_ms is not null
    ),
    merged as (select b, m, bin, sum(n)::float8 as n from parts group by b, m, bin),
    ${percentileCtes("c", "merged", "b")}
    select g.b as start,
           coalesce(c.succeeded, 0) as succeeded, coalesce(c.failed, 0) as failed, coalesce(c.timed_out, 0) as timed_out,
           coalesce(c.cancelled, 0) as cancelled, coalesce(c.expired, 0) as expired,
           coalesce(c.webhook_delivered, 0) as webhook_delivered, coalesce(c.webhook_failed, 0) as webhook_failed,
           round(coalesce(w.queue_wait_p50_ms, q50.v)::numeric, 1)::float8 as q50,
           round(coalesce(w.queue_wait_p95_ms, q95.v)::numeric, 1)::float8 as q95,
           round(coalesce(w.run_p50_ms, r50.v)::numeric, 1)::float8 as r50,
           round(coalesce(w.run_p95_ms, r95.v)::numeric, 1)::float8 as r95,
           (select count(*)::int from runs where ${runFilter} and status in ('dispatched', 'running')) as in_flight,
           (select count(*)::int from runs where ${runFilter} and status = 'queued') as queued,
           ${q.app === undefined ? sql`true` : sql`exists (select 1 from apps where project_id = ${q.project} and name = ${q.app})`} as app_exists
    from generate_series(${start}::timestamptz, ${last}::timestamptz, ${sql.lit(`${B} seconds`)}::interval) as g(b)
    left join counts c on c.b = g.b
    left join whole w on w.b = g.b
    left join c_p50 q50 on q50.b = g.b and q50.m = 'q'
    left join c_p95 q95 on q95.b = g.b and q95.m = 'q'
    left join c_p50 r50 on r50.b = g.b and r50.m = 'r'
    left join c_p95 r95 on r95.b = g.b and r95.m = 'r'
    order by g.b`.execute(db);
  const first = rows.rows[0];
  const orUndefined = (v: number | null) => (v === null ? undefined : v);
  return {
    buckets: rows.rows.map(
      (r): StatsBucket => ({
        start: r.start,
        succeeded: r.succeeded,
        failed: r.failed,
        timedOut: r.timed_out,
        cancelled: r.cancelled,
        expired: r.expired,
        queueWaitP50Ms: orUndefined(r.q50),
        queueWaitP95Ms: orUndefined(r.q95),
        runP50Ms: orUndefined(r.r50),
        runP95Ms: orUndefined(r.r95),
        webhookDelivered: r.webhook_delivered,
        webhookFailed: r.webhook_failed,
      }),
    ),
    inFlight: first?.in_flight ?? 0,
    queued: first?.queued ?? 0,
    appExists: first?.app_exists ?? true,
  };
}
