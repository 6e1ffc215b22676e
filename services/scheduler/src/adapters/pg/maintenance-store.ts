import { sql, type Kysely } from "kysely";
import type { AppSettings, DispatchRef } from "../../core/model.js";
import { findApp } from "./run-queries.js";
import { projectRoom } from "./tenancy-store.js";
import type { DueWork } from "../../core/ports.js";
import type { SchedulerDb } from "./schema.js";

/** Apps that have queued runs whose time has come. */
export async function appsWithDueRuns(db: Kysely<SchedulerDb>, limit: number): Promise<{ project: string; app: string }[]> {
  const rows = await db
    .selectFrom("runs")
    .select(["project_id", "app"])
    .distinct()
    .where("status", "=", "queued")
    .where((eb) => eb.or([eb("not_before", "is", null), eb("not_before", "<=", sql<Date>`now()`)]))
    // A paused app's queue is held: not looked at each tick.
    .where(sql<boolean>`not exists (select 1 from apps a where a.project_id = runs.project_id and a.name = runs.app and a.paused)`)
    .limit(limit)
    .execute();
  return rows.map((r) => ({ project: r.project_id, app: r.app }));
}

/**
 * Moves an app's due queued runs to `dispatched`, as many as its concurrency
 * limit leaves room for, highest priority first and FIFO within a priority.
 * The app row lock makes two schedulers count the same in-flight runs.
 */
export async function dispatchQueued(
  db: Kysely<SchedulerDb>,
  project: string,
  appName: string,
  batch: number,
): Promise<DispatchRef[]> {
  return db.transaction().execute(async (trx) => {
    // The project's max_in_flight first: its row lock comes before the app's (as at submit).
    let room = Math.min(batch, await projectRoom(trx, project));
    if (room <= 0) return [];
    const app: AppSettings | undefined = await findApp(trx, project, appName);
    if (app?.paused) return [];
    if (app && app.maxConcurrency > 0) {
      await trx.selectFrom("apps").select("name").where("project_id", "=", project).where("name", "=", appName).forUpdate().execute();
      const { n } = await trx
        .selectFrom("runs")
        .select(sql<number>`count(*)::int`.as("n"))
        .where("project_id", "=", project)
        .where("app", "=", appName)
        .where("status", "in", ["dispatched", "running"])
        .executeTakeFirstOrThrow();
      room = Math.min(room, app.maxConcurrency - n);
    }
    if (room <= 0) return [];
    const rows = await trx
      .updateTable("runs")
      .set({ status: "dispatched", dispatched_at: sql<Date>`now()` as never })
      .where(
        "id",
        "in",
        trx
          .selectFrom("runs")
          .select("id")
          .where("project_id", "=", project)
          .where("app", "=", appName)
          .where("status", "=", "queued")
          .where((eb) => eb.or([eb("not_before", "is", null), eb("not_before", "<=", sql<Date>`now()`)]))
          // Past its deadline a run is the reconciler's to expire: a dispatch would take a slot it can never use.
          .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", sql<Date>`now()`)]))
          .orderBy("priority", "desc")
          .orderBy("created_at")
          .orderBy("id")
          .limit(room)
          .forUpdate()
          .skipLocked(),
      )
      .returning(["id", "attempt", "project_id", "app", "traceparent"])
      .execute();
    return rows.map((r) => ({ runId: r.id, attempt: r.attempt, project: r.project_id, app: r.app, traceparent: r.traceparent }));
  });
}

/**
 * Ends as `expired` (queue_ttl_exceeded) the runs that waited too long: a
 * first attempt queued past its app's TTL, and any run not started by its
 * own deadline (`expires_at`), queued or dispatched (the claim refuses it
 * then). The earlier of the two deadlines wins. The status is checked again
 * under each row's lock, so a run claimed meanwhile is left running.
 */
export async function expireQueued(db: Kysely<SchedulerDb>): Promise<{ id: string; project: string; app: string; webhook: boolean }[]> {
  const rows = await sql<{ id: string; project_id: string; app: string; webhook_url: string | null }>`
    update runs r set
      status = 'expired', finished_at = now(),
      error_code = 'queue_ttl_exceeded',
      error_message = case when r.expires_at <= now() then 'not started within the run''s own queue_ttl_seconds'
        else 'waited in the queue past the app''s queue_ttl_seconds' end,
      webhook_state = case when r.webhook_url is null then 'none' else 'pending' end
    where r.id in (
        select id from runs where status in ('queued', 'dispatched') and expires_at <= now()
        union
        select q.id from apps a join runs q on q.project_id = a.project_id and q.app = a.name and q.status = 'queued'
        where a.queue_ttl_seconds > 0 and q.attempt = 1 and q.created_at < now() - make_interval(secs => a.queue_ttl_seconds))
      and (r.status = 'queued' or (r.status = 'dispatched' and r.expires_at <= now()))
    returning r.id, r.project_id, r.app, r.webhook_url`.execute(db);
  return rows.rows.map((r) => ({ id: r.id, project: r.project_id, app: r.app, webhook: r.webhook_url !== null }));
}

/**
 * A running run is lost when its own lease (stamped at the claim) and the
 * lease of the invoker session that owns it have both run out: heartbeats
 * renew the session only, never the runs (migration 0007).
 */
export const lostLease = sql<boolean>`runs.lease_expires_at < now() and not exists (
  select 1 from invoker_sessions s where s.invoker_id = runs.owner and s.lease_expires_at >= now())`;

/**
 * Running runs whose lease is lost (see lostLease), found from the expired
 * sessions through the partial index on the owner: the many calls held by
 * live invokers are never read. A claim makes its invoker's session row, so
 * every owner has one.
 */
export async function expiredLeases(db: Kysely<SchedulerDb>, limit: number): Promise<{ id: string; attempt: number }[]> {
  const { rows } = await sql<{ id: string; attempt: number }>`
    select r.id, r.attempt from invoker_sessions s
    join runs r on r.owner = s.invoker_id and r.status = 'running'
    where s.lease_expires_at < now() and r.lease_expires_at < now()
    limit ${limit}`.execute(db);
  return rows;
}

/** Forgets sessions expired for an hour that no longer own a running run. */
export async function dropIdleSessions(db: Kysely<SchedulerDb>): Promise<number> {
  const r = await sql`
    delete from invoker_sessions s
    where s.lease_expires_at < now() - interval '1 hour'
      and not exists (select 1 from runs r where r.owner = s.invoker_id and r.status = 'running')`.execute(db);
  return Number(r.numAffectedRows ?? 0);
}

/**
 * Dispatched runs nobody claimed within `afterSeconds`: JetStream may have lost
 * the message (acks are not fsynced per message), so publish again. The
 * message id dedups a republish that raced the original.
 */
export async function staleDispatches(db: Kysely<SchedulerDb>, afterSeconds: number, limit: number): Promise<DispatchRef[]> {
  const rows = await sql<{ id: string; attempt: number; project_id: string; app: string; traceparent: string }>`
    update runs set dispatched_at = now()
    where id in (
      select id from runs
      where status = 'dispatched' and dispatched_at < now() - make_interval(secs => ${afterSeconds})
      order by dispatched_at limit ${limit}
      for update skip locked)
    returning id, attempt, project_id, app, traceparent`.execute(db);
  return rows.rows.map((r) => ({ runId: r.id, attempt: r.attempt, project: r.project_id, app: r.app, traceparent: r.traceparent }));
}

/** Finished runs whose webhook no notifier has taken within `afterSeconds`. */
export async function untakenWebhooks(
  db: Kysely<SchedulerDb>,
  afterSeconds: number,
  limit: number,
): Promise<{ id: string; project: string; app: string; status: string }[]> {
  const rows = await sql<{ id: string; project_id: string; app: string; status: string }>`
    update runs set webhook_published_at = now()
    where id in (
      select id from runs
      where webhook_state = 'pending' and webhook_taken_at is null
        and finished_at < now() - make_interval(secs => ${afterSeconds})
        and (webhook_published_at is null or webhook_published_at < now() - make_interval(secs => ${afterSeconds}))
      limit ${limit}
      for update skip locked)
    returning id, project_id, app, status`.execute(db);
  return rows.rows.map((r) => ({ id: r.id, project: r.project_id, app: r.app, status: r.status }));
}

/** Queue depth and runs in flight per app, for metrics and the apps API. */
export async function appCounts(
  db: Kysely<SchedulerDb>,
  project?: string,
): Promise<{ project: string; app: string; queued: number; inFlight: number }[]> {
  let q = db
    .selectFrom("runs")
    .select([
      "project_id",
      "app",
      sql<number>`count(*) filter (where status = 'queued')::int`.as("queued"),
      sql<number>`count(*) filter (where status in ('dispatched', 'running'))::int`.as("in_flight"),
    ])
    .where("status", "in", ["queued", "dispatched", "running"]);
  if (project) q = q.where("project_id", "=", project);
  const rows = await q.groupBy(["project_id", "app"]).execute();
  return rows.map((r) => ({ project: r.project_id, app: r.app, queued: r.queued, inFlight: r.in_flight }));
}

/**
 * Which of the reconciler's repairs have work now, in one read (one commit)
 * instead of one statement per repair: an idle mesh costs Postgres one
 * statement per tick. Each test is the condition of its repair.
 */
export async function dueWork(db: Kysely<SchedulerDb>, redispatchAfterSeconds: number, webhookAfterSeconds: number): Promise<DueWork> {
  const { rows } = await sql<DueWork>`
    select
      (exists (select 1 from runs r join apps a on a.project_id = r.project_id and a.name = r.app
              where r.status = 'queued' and r.attempt = 1 and a.queue_ttl_seconds > 0
                and r.created_at < now() - make_interval(secs => a.queue_ttl_seconds))
        or exists (select 1 from runs where status in ('queued', 'dispatched') and expires_at <= now())) as expire,
      exists (select 1 from invoker_sessions s join runs r on r.owner = s.invoker_id and r.status = 'running'
              where s.lease_expires_at < now() and r.lease_expires_at < now()) as leases,
      exists (select 1 from runs
              where status = 'queued' and (not_before is null or not_before <= now())
                and not exists (select 1 from apps a where a.project_id = runs.project_id and a.name = runs.app and a.paused)) as queued,
      exists (select 1 from runs
              where status = 'dispatched' and dispatched_at < now() - make_interval(secs => ${redispatchAfterSeconds})) as redispatch,
      exists (select 1 from runs
              where webhook_state = 'pending' and webhook_taken_at is null
                and finished_at < now() - make_interval(secs => ${webhookAfterSeconds})
                and (webhook_published_at is null or webhook_published_at < now() - make_interval(secs => ${webhookAfterSeconds}))) as webhooks,
      least(
        (select min(not_before) from runs where status = 'queued' and not_before > now()),
        (select min(expires_at) from runs where status in ('queued', 'dispatched') and expires_at > now())) as "nextDueAt"
  `.execute(db);
  return rows[0]!;
}
