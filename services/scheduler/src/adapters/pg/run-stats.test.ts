import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { createDb, migrate } from "@longhaul/shared/db";
import { sql, type Kysely } from "kysely";
import { createTestDatabase } from "../../../../../tests/helpers/isolation.js";
import { STATS_WINDOWS, type StatsQuery, type StatsResult } from "../../core/run-stats.js";
import { ensureProjectKey } from "./app-store.js";
import { schedulerMigrationSet } from "./migrations.js";
import { batchedWebhookState } from "./batched.js";
import { readRunStats, rollUpRunStats } from "./run-stats.js";
import type { SchedulerDb } from "./schema.js";

/**
 * The overview's figures against a real Postgres: what the rollup folds
 * reads the same as the runs themselves, at every window, with percentiles
 * within their bins, filters by app and mode, and one rollup pass at a time.
 */

const log = createLogger("test", "silent");
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Kysely<SchedulerDb>;
/** A minute well past the rollup's margin: the runs below end in buckets around it. */
let T: Date;
let now: Date;

const at = (base: Date, ms: number) => new Date(base.getTime() + ms);

interface Seed {
  project?: string;
  app?: string;
  mode?: "async" | "sync";
  status: string;
  finishedAt?: Date | null;
  runMs?: number | null;
  waitMs?: number;
  webhook?: { state: string; settledAt: Date };
}

async function seed(r: Seed): Promise<void> {
  const finished = r.finishedAt ?? null;
  const started = finished && r.runMs != null ? at(finished, -r.runMs) : null;
  const created = at(started ?? finished ?? now, -(r.waitMs ?? 0));
  await db
    .insertInto("runs")
    .values({
      id: crypto.randomUUID(),
      project_id: r.project ?? "p1",
      app: r.app ?? "a",
      mode: r.mode ?? "async",
      status: r.status,
      method: "POST",
      path: "/",
      upstream_url: "http://127.0.0.1:1",
      request_headers: "[]",
      request_body: null,
      webhook_url: r.webhook ? "http://example.com/h" : null,
      webhook_state: r.webhook?.state ?? "none",
      webhook_settled_at: r.webhook?.settledAt ?? null,
      timeout_seconds: 60,
      max_attempts: 1,
      idempotency_key: null,
      retry_of: null,
      not_before: null,
      created_at: created,
      started_at: started,
      finished_at: finished,
    })
    .execute();
}

function query(window: keyof typeof STATS_WINDOWS, patch: Partial<StatsQuery> = {}): StatsQuery {
  return { project: "p1", app: undefined, mode: undefined, ...STATS_WINDOWS[window], ...patch };
}

const bucketAt = (res: StatsResult, start: Date) => res.buckets.find((b) => b.start.getTime() === start.getTime());
const floorTo = (d: Date, s: number) => new Date(Math.floor(d.getTime() / (s * 1000)) * s * 1000);

/** Rolls up until the rollup stops moving (it goes at most 2 h per pass). */
async function rollUpAll(): Promise<Date> {
  let last = new Date(0);
  for (;;) {
    const to = await rollUpRunStats(db);
    if (to.getTime() === last.getTime()) return to;
    last = to;
  }
}

beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb<SchedulerDb>({ url: database.url, log });
  await migrate(db, schedulerMigrationSet, log);
  await ensureProjectKey(db, "p1", "key-one-0123456789");
  await ensureProjectKey(db, "p2", "key-two-0123456789");
  for (const name of ["a", "b"]) {
    await db
      .insertInto("apps")
      .values({
        project_id: "p1", name, url: "http://127.0.0.1:1", timeout_seconds: 60, max_concurrency: 0, max_attempts: 1,
        initial_backoff_seconds: 1, max_backoff_seconds: 1, idempotent: false, queue_ttl_seconds: 0,
      })
      .execute();
  }
  now = (await sql<{ now: Date }>`select now() as now`.execute(db)).rows[0]!.now;
  T = new Date(Math.floor(now.getTime() / 60_000) * 60_000 - 20 * 60_000);
  // Bucket T: ten runs of app a with waits 100..1000 ms and durations 1..10 s.
  const statuses = ["succeeded", "succeeded", "failed", "succeeded", "timed_out", "succeeded", "failed", "succeeded", "succeeded", "succeeded"];
  for (let i = 1; i <= 10; i++) await seed({ status: statuses[i - 1]!, finishedAt: at(T, 30_000), runMs: 1000 * i, waitMs: 100 * i });
  // T + 5 min: runs that never started (no wait, no duration).
  for (let i = 0; i < 3; i++) await seed({ status: "cancelled", finishedAt: at(T, 5 * 60_000 + 1000) });
  for (let i = 0; i < 2; i++) await seed({ status: "expired", finishedAt: at(T, 5 * 60_000 + 2000) });
  // T + 10 min: sync calls of app b.
  for (let i = 0; i < 4; i++) await seed({ app: "b", mode: "sync", status: "succeeded", finishedAt: at(T, 10 * 60_000), runMs: 50, waitMs: 0 });
  // Webhooks settle at T + 2 min, whatever bucket their runs ended in.
  await seed({ status: "succeeded", finishedAt: at(T, -30 * 60_000), runMs: 10, webhook: { state: "delivered", settledAt: at(T, 2 * 60_000) } });
  await seed({ status: "succeeded", finishedAt: at(T, 90_000), runMs: 10, webhook: { state: "delivered", settledAt: at(T, 2 * 60_000 + 5) } });
  await seed({ status: "failed", finishedAt: at(T, 90_000), runMs: 10, webhook: { state: "failed", settledAt: at(T, 2 * 60_000 + 9) } });
  // Now: in flight and queued.
  await seed({ status: "running", runMs: null });
  await seed({ status: "dispatched" });
  for (let i = 0; i < 4; i++) await seed({ app: "b", status: "queued" });
  // Another project's runs in the same buckets are never counted.
  for (let i = 0; i < 5; i++) await seed({ project: "p2", status: "failed", finishedAt: at(T, 30_000), runMs: 5 });
});

afterAll(async () => {
  await db?.destroy();
  await database?.drop();
});

describe("run stats", () => {
  it("reads the runs themselves before any rollup: counts, percentiles within their bin, gauges", async () => {
    const res = await readRunStats(db, query("1h"), now, undefined);
    expect(res.buckets).toHaveLength(60);
    expect(res.buckets.at(-1)!.start).toEqual(floorTo(now, 60));
    const t = bucketAt(res, T)!;
    expect(t).toMatchObject({ succeeded: 7, failed: 2, timedOut: 1, cancelled: 0, expired: 0 });
    // Waits 100..1000 ms: the median is 500, p95 1000 (nearest rank), each within a 10 % bin.
    expect(t.queueWaitP50Ms! / 500).toBeGreaterThan(0.9);
    expect(t.queueWaitP50Ms! / 500).toBeLessThan(1.1);
    expect(t.queueWaitP95Ms! / 1000).toBeGreaterThan(0.9);
    expect(t.queueWaitP95Ms! / 1000).toBeLessThan(1.1);
    expect(t.runP50Ms! / 5000).toBeGreaterThan(0.9);
    expect(t.runP50Ms! / 5000).toBeLessThan(1.1);
    expect(bucketAt(res, at(T, 5 * 60_000))).toMatchObject({ cancelled: 3, expired: 2, queueWaitP50Ms: undefined, runP50Ms: undefined });
    expect(bucketAt(res, at(T, 2 * 60_000))).toMatchObject({ webhookDelivered: 2, webhookFailed: 1 });
    expect(res).toMatchObject({ inFlight: 2, queued: 4, appExists: true });
    const total = res.buckets.reduce((n, b) => n + b.succeeded + b.failed + b.timedOut + b.cancelled + b.expired, 0);
    // Bucket T, the unstarted ones, the sync calls and the three runs with webhooks.
    expect(total).toBe(10 + 5 + 4 + 3);
  });

  it("filters by app and mode, and says when the app does not exist", async () => {
    const b = await readRunStats(db, query("1h", { app: "b" }), now, undefined);
    expect(bucketAt(b, at(T, 10 * 60_000))).toMatchObject({ succeeded: 4, queueWaitP50Ms: 0.5 });
    expect(bucketAt(b, T)).toMatchObject({ succeeded: 0, failed: 0 });
    expect(b).toMatchObject({ inFlight: 0, queued: 4 });
    const sync = await readRunStats(db, query("1h", { mode: "sync" }), now, undefined);
    expect(sync.buckets.reduce((n, x) => n + x.succeeded, 0)).toBe(4);
    expect((await readRunStats(db, query("1h", { app: "nope" }), now, undefined)).appExists).toBe(false);
  });

  it("reads the same figures from the rollup as from the runs, at every window", async () => {
    const filters: Partial<StatsQuery>[] = [{}, { app: "b" }, { mode: "sync" }, { app: "a", mode: "async" }];
    const reads = (hint: Date | undefined) =>
      Promise.all(
        filters.flatMap((f) => (["1h", "24h", "7d"] as const).map((w) => readRunStats(db, query(w, f), now, hint))),
      );
    const before = await reads(undefined);
    const rolled = await rollUpAll();
    expect(rolled.getTime()).toBeGreaterThan(at(T, 10 * 60_000).getTime());
    const levels = await sql<{ bucket_seconds: number; n: number }>`
      select bucket_seconds, count(*)::int as n from run_stats group by 1 order by 1`.execute(db);
    expect(levels.rows.map((r) => r.bucket_seconds)).toContain(60);
    const after = await reads(rolled);
    expect(after).toEqual(before);
    // A pass with nothing new changes nothing.
    await rollUpRunStats(db);
    expect(await readRunStats(db, query("24h"), now, rolled)).toEqual(before[1]);
    // Every app and mode, each app, each mode, and both: the rollup's rows per bucket.
    const kinds = await sql<{ app: string; mode: string }>`
      select distinct app, mode from run_stats where project_id = 'p1' and bucket_seconds = 60 order by 1, 2`.execute(db);
    expect(kinds.rows).toEqual([
      { app: "*", mode: "*" },
      { app: "*", mode: "async" },
      { app: "*", mode: "sync" },
      { app: "a", mode: "*" },
      { app: "a", mode: "async" },
      { app: "b", mode: "*" },
      { app: "b", mode: "sync" },
    ]);
    // Coarser windows add up the same runs.
    const sum = (r: StatsResult) => r.buckets.reduce((n, b) => n + b.succeeded + b.failed + b.timedOut + b.cancelled + b.expired, 0);
    expect(after.slice(0, 3).map(sum)).toEqual([22, 22, 22]);
    expect(after.slice(3, 6).map(sum)).toEqual([4, 4, 4]);
  });

  it("stamps the time a webhook settles, in the update that records it", async () => {
    await seed({ status: "succeeded", finishedAt: at(T, 0), runMs: 10, webhook: { state: "pending", settledAt: at(T, 0) } });
    const id = (await db.selectFrom("runs").select("id").where("webhook_state", "=", "pending").executeTakeFirstOrThrow()).id;
    const setWebhookState = (_db: unknown, runId: string, state: string) => tell({ runId, state });
    const tell = batchedWebhookState(db);
    const settled = async () => (await db.selectFrom("runs").select("webhook_settled_at").where("id", "=", id).executeTakeFirstOrThrow()).webhook_settled_at;
    await setWebhookState(db, id, "pending");
    expect(await settled()).toBeNull();
    await setWebhookState(db, id, "delivered");
    const first = await settled();
    expect(first).toBeInstanceOf(Date);
    // A redelivery settles again later.
    await setWebhookState(db, id, "pending");
    expect(await settled()).toBeNull();
    await setWebhookState(db, id, "failed");
    expect((await settled())!.getTime()).toBeGreaterThanOrEqual(first!.getTime());
  });

  it("runs one rollup pass at a time across schedulers", async () => {
    // Hold the progress row as another scheduler's pass would: this pass skips and only reports.
    const other = createDb<SchedulerDb>({ url: database.url, log });
    try {
      const seen = (await sql<{ rolled_until: Date }>`select rolled_until from run_stats_progress`.execute(db)).rows[0]!.rolled_until;
      await other.transaction().execute(async (trx) => {
        await sql`select 1 from run_stats_progress where id = 1 for update`.execute(trx);
        expect(await rollUpRunStats(db)).toEqual(seen);
      });
    } finally {
      await other.destroy();
    }
  });
});
