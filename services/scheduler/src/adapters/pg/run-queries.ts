import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import type { AppSettings, AttemptRecord, RunRecord } from "../../core/model.js";
import type { ListFilter, RetryFilter } from "../../core/ports.js";
import { runColumns, type Db } from "./run-columns.js";

/** Inserts a finished pass-through call, without bodies. */
export async function insertSyncRun(
  db: Db,
  r: { project: string; app: string; upstreamUrl: string; method: string; path: string; statusCode: number; errorCode: string; errorMessage: string; startedAt: Date; finishedAt: Date },
): Promise<string> {
  const id = randomUUID();
  const ok = r.statusCode >= 200 && r.statusCode < 300 && !r.errorCode;
  await db
    .insertInto("runs")
    .values({
      id,
      project_id: r.project,
      app: r.app,
      mode: "sync",
      status: ok ? "succeeded" : "failed",
      method: r.method,
      path: r.path,
      upstream_url: r.upstreamUrl,
      request_headers: "[]",
      request_body: null,
      webhook_url: null,
      timeout_seconds: 0,
      max_attempts: 1,
      idempotency_key: null,
      retry_of: null,
      not_before: null,
      created_at: r.startedAt,
      dispatched_at: r.startedAt,
      started_at: r.startedAt,
      finished_at: r.finishedAt,
      status_code: r.statusCode || null,
      error_code: ok ? null : r.errorCode || "app_error",
      error_message: ok ? null : r.errorMessage || `app answered ${r.statusCode}`,
    })
    .execute();
  return id;
}

export async function findRun(db: Db, project: string | null, id: string): Promise<RunRecord | undefined> {
  let q = db.selectFrom("runs").select(runColumns).where("id", "=", id);
  if (project !== null) q = q.where("project_id", "=", project);
  return (await q.executeTakeFirst()) as RunRecord | undefined;
}

export async function findAttempts(db: Db, runId: string): Promise<AttemptRecord[]> {
  return (await db.selectFrom("run_attempts").selectAll().where("run_id", "=", runId).orderBy("attempt").execute()) as AttemptRecord[];
}

/** Runs without their bodies: listings never carry them. */
function selectRunsWithoutBodies(db: Db) {
  return db
    .selectFrom("runs")
    .select(runColumns.filter((c) => c !== "request_body" && c !== "response_body"))
    .select([sql<null>`null`.as("request_body"), sql<null>`null`.as("response_body")]);
}

/** Newest first, keyset-paginated so that inserts do not shift pages. */
export async function listRuns(db: Db, f: ListFilter): Promise<RunRecord[]> {
  let q = selectRunsWithoutBodies(db).where("project_id", "=", f.project);
  if (f.app) q = q.where("app", "=", f.app);
  if (f.status) q = q.where("status", "=", f.status);
  if (f.createdAfter) q = q.where("created_at", ">", f.createdAfter);
  if (f.createdBefore) q = q.where("created_at", "<", f.createdBefore);
  if (f.statusCode) q = q.where("status_code", ">=", f.statusCode.min).where("status_code", "<=", f.statusCode.max);
  // A prefix is a range of the primary key (uuids sort as their hex digits).
  if (f.idRange) q = q.where("id", ">=", f.idRange.first).where("id", "<=", f.idRange.last);
  // `labels <> '{}'` is implied by the containment, but Postgres only uses the partial
  // GIN index (runs_labels, labelled runs only) when the query states its predicate:
  // without it, a rare label is a sequential scan of every run (1 s on a million).
  if (f.labels && Object.keys(f.labels).length > 0) {
    q = q.where(sql<boolean>`labels <> '{}'::jsonb and labels @> ${JSON.stringify(f.labels)}::jsonb`);
  }
  // The cursor's time has a JS Date's milliseconds while created_at has
  // microseconds: compare with the cursor row's own created_at, looked up by
  // its id (a primary-key read), or runs created in the same millisecond as
  // the page's last one are skipped or repeated. The cursor's time stands in
  // for a run deleted since.
  if (f.after) {
    q = q.where(
      sql<boolean>`(created_at, id) < (coalesce((select c.created_at from runs c where c.id = ${f.after.id}::uuid), ${f.after.createdAt}), ${f.after.id}::uuid)`,
    );
  }
  return (await q.orderBy("created_at", "desc").orderBy("id", "desc").limit(f.limit).execute()) as unknown as RunRecord[];
}

/** The project's runs among `ids` (a project watch's batch of changed runs), oldest first. */
export async function findRuns(db: Db, project: string, ids: readonly string[]): Promise<RunRecord[]> {
  if (ids.length === 0) return [];
  return (await selectRunsWithoutBodies(db)
    .where("project_id", "=", project)
    .where("id", "in", [...ids])
    .orderBy("created_at")
    .orderBy("id")
    .execute()) as unknown as RunRecord[];
}

/** An app's columns under `app_` names, for reads that join the app to its run or project. */
export const joinedAppColumns = [
  "apps.name as app_name",
  "apps.url as app_url",
  "apps.timeout_seconds as app_timeout_seconds",
  "apps.max_concurrency as app_max_concurrency",
  "apps.max_attempts as app_max_attempts",
  "apps.initial_backoff_seconds as app_initial_backoff_seconds",
  "apps.max_backoff_seconds as app_max_backoff_seconds",
  "apps.idempotent as app_idempotent",
  "apps.queue_ttl_seconds as app_queue_ttl_seconds",
  "apps.paused as app_paused",
] as const;

/** The columns of {@link joinedAppColumns} as a row of a left join has them (null: no such app). */
export interface JoinedAppRow {
  app_name: string | null;
  app_url: string | null;
  app_timeout_seconds: number | null;
  app_max_concurrency: number | null;
  app_max_attempts: number | null;
  app_initial_backoff_seconds: number | null;
  app_max_backoff_seconds: number | null;
  app_idempotent: boolean | null;
  app_queue_ttl_seconds: number | null;
  app_paused: boolean | null;
}

/** The app of a joined row; undefined when the join found none. */
export function joinedApp(row: JoinedAppRow): AppSettings | undefined {
  if (row.app_name === null) return undefined;
  return {
    name: row.app_name,
    url: row.app_url!,
    timeoutSeconds: row.app_timeout_seconds!,
    maxConcurrency: row.app_max_concurrency!,
    maxAttempts: row.app_max_attempts!,
    initialBackoffSeconds: row.app_initial_backoff_seconds!,
    maxBackoffSeconds: row.app_max_backoff_seconds!,
    idempotent: row.app_idempotent!,
    queueTtlSeconds: row.app_queue_ttl_seconds!,
    paused: row.app_paused ?? false,
  };
}

export async function findApp(db: Db, project: string, name: string): Promise<AppSettings | undefined> {
  const row = await db.selectFrom("apps").selectAll().where("project_id", "=", project).where("name", "=", name).executeTakeFirst();
  if (!row) return undefined;
  return {
    name: row.name,
    url: row.url,
    timeoutSeconds: row.timeout_seconds,
    maxConcurrency: row.max_concurrency,
    maxAttempts: row.max_attempts,
    initialBackoffSeconds: row.initial_backoff_seconds,
    maxBackoffSeconds: row.max_backoff_seconds,
    idempotent: row.idempotent,
    queueTtlSeconds: row.queue_ttl_seconds,
    paused: row.paused,
  };
}

/**
 * Ids of the finished async runs that match a bulk retry's filter, oldest
 * first, that still have their request and were never retried (the partial
 * index on retry_of answers that from the retries alone).
 */
export async function findRetryable(db: Db, f: RetryFilter): Promise<string[]> {
  let q = db
    .selectFrom("runs")
    .select("id")
    .where("project_id", "=", f.project)
    .where("status", "=", f.status)
    .where("mode", "=", "async")
    .where("request_body", "is not", null)
    .where(sql<boolean>`not exists (select 1 from runs r2 where r2.retry_of = runs.id)`);
  if (f.app) q = q.where("app", "=", f.app);
  if (f.errorCode) q = q.where("error_code", "=", f.errorCode);
  if (f.createdAfter) q = q.where("created_at", ">", f.createdAfter);
  if (f.createdBefore) q = q.where("created_at", "<", f.createdBefore);
  const rows = await q.orderBy("created_at").orderBy("id").limit(f.limit).execute();
  return rows.map((r) => r.id);
}
