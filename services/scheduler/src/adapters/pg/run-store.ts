import { randomUUID } from "node:crypto";
import { sql, type Kysely, type Transaction } from "kysely";
import { LonghaulError } from "@longhaul/shared";
import type { AppSettings, AttemptRecord, DispatchRef, HeaderPair, RunRecord } from "../../core/model.js";
import type { Decision } from "../../core/retry-policy.js";
import type { SchedulerDb } from "./schema.js";

type Db = Kysely<SchedulerDb> | Transaction<SchedulerDb>;

/** A run to insert, validated by the core. */
export interface NewRunInput {
  project: string;
  app: AppSettings;
  mode: "async" | "sync";
  method: string;
  path: string;
  query: string;
  headers: HeaderPair[];
  body: Buffer;
  webhookUrl: string | null;
  timeoutSeconds: number;
  priority: number;
  idempotencyKey: string | null;
  requestHash: string;
  notBefore: Date | null;
  retryOf: string | null;
  traceparent: string;
  tracestate: string;
  /** Refuse with 429 when an app with a concurrency limit has this many queued. */
  maxQueuedPerApp: number;
  idempotencyTtlSeconds: number;
}

export interface SubmitResult {
  runId: string;
  existing: boolean;
  /** Set when the run was inserted as dispatched: publish it after commit. */
  dispatch: DispatchRef | null;
}

const runColumns = [
  "id", "project_id", "app", "mode", "status", "method", "path", "query", "upstream_url",
  "request_headers", "request_body", "webhook_url", "webhook_state", "priority", "timeout_seconds",
  "max_attempts", "attempt", "idempotency_key", "retry_of", "not_before", "created_at", "dispatched_at",
  "started_at", "finished_at", "owner", "lease_expires_at", "status_code", "response_headers",
  "response_body", "response_truncated", "error_code", "error_message", "traceparent", "tracestate",
] as const;

/** Counts the app's runs in flight under a lock on its row, so two schedulers agree. */
async function roomForApp(trx: Transaction<SchedulerDb>, project: string, app: AppSettings): Promise<number> {
  if (app.maxConcurrency === 0) return Number.POSITIVE_INFINITY;
  await trx.selectFrom("apps").select("name").where("project_id", "=", project).where("name", "=", app.name).forUpdate().execute();
  const { n } = await trx
    .selectFrom("runs")
    .select(sql<number>`count(*)::int`.as("n"))
    .where("project_id", "=", project)
    .where("app", "=", app.name)
    .where("status", "in", ["dispatched", "running"])
    .executeTakeFirstOrThrow();
  return app.maxConcurrency - n;
}

/**
 * Stores a run in one transaction (one commit on the hot path): claims the
 * idempotency key, and inserts the run as `dispatched` when the app has room
 * and nothing delays it, else `queued`.
 */
export async function insertRun(db: Kysely<SchedulerDb>, input: NewRunInput): Promise<SubmitResult> {
  return db.transaction().execute(async (trx) => {
    const runId = randomUUID();
    if (input.idempotencyKey) {
      const claimed = await trx
        .insertInto("idempotency_keys")
        .values({
          project_id: input.project,
          key: input.idempotencyKey,
          run_id: runId,
          request_hash: input.requestHash,
          expires_at: sql<Date>`now() + make_interval(secs => ${input.idempotencyTtlSeconds})` as never,
        })
        .onConflict((oc) =>
          oc
            .columns(["project_id", "key"])
            .doUpdateSet({
              run_id: (eb) => eb.ref("excluded.run_id"),
              request_hash: (eb) => eb.ref("excluded.request_hash"),
              expires_at: (eb) => eb.ref("excluded.expires_at"),
            })
            .where("idempotency_keys.expires_at", "<", sql<Date>`now()`),
        )
        .returning("run_id")
        .executeTakeFirst();
      if (!claimed) {
        const prior = await trx
          .selectFrom("idempotency_keys")
          .select(["run_id", "request_hash"])
          .where("project_id", "=", input.project)
          .where("key", "=", input.idempotencyKey)
          .executeTakeFirstOrThrow();
        if (prior.request_hash !== input.requestHash) {
          throw new LonghaulError("unprocessable", "Idempotency-Key was used with a different request");
        }
        return { runId: prior.run_id, existing: true, dispatch: null };
      }
    }
    const delayed = input.notBefore !== null && input.notBefore.getTime() > Date.now();
    let status: "queued" | "dispatched" = "queued";
    if (!delayed) {
      const room = await roomForApp(trx, input.project, input.app);
      if (room > 0) status = "dispatched";
      else await refuseWhenQueueFull(trx, input);
    }
    await trx
      .insertInto("runs")
      .values({
        id: runId,
        project_id: input.project,
        app: input.app.name,
        mode: input.mode,
        status,
        method: input.method,
        path: input.path,
        query: input.query,
        upstream_url: input.app.url,
        request_headers: JSON.stringify(input.headers),
        request_body: input.body,
        webhook_url: input.webhookUrl,
        priority: input.priority,
        timeout_seconds: input.timeoutSeconds,
        max_attempts: input.app.maxAttempts,
        idempotency_key: input.idempotencyKey,
        retry_of: input.retryOf,
        not_before: input.notBefore,
        dispatched_at: status === "dispatched" ? sql<Date>`now()` as never : null,
        traceparent: input.traceparent,
        tracestate: input.tracestate,
      })
      .execute();
    const dispatch =
      status === "dispatched"
        ? { runId, attempt: 1, project: input.project, app: input.app.name, traceparent: input.traceparent }
        : null;
    return { runId, existing: false, dispatch };
  });
}

async function refuseWhenQueueFull(trx: Transaction<SchedulerDb>, input: NewRunInput): Promise<void> {
  const { n } = await trx
    .selectFrom("runs")
    .select(sql<number>`count(*)::int`.as("n"))
    .where("project_id", "=", input.project)
    .where("app", "=", input.app.name)
    .where("status", "=", "queued")
    .executeTakeFirstOrThrow();
  if (n >= input.maxQueuedPerApp) {
    throw new LonghaulError("resource_exhausted", `app ${input.app.name} has ${n} runs queued, its limit`, {
      retryAfterSeconds: 5,
    });
  }
}

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

/** Filters of a run listing; the cursor is the last (created_at, id) seen. */
export interface ListFilter {
  project: string;
  app?: string | undefined;
  status?: string | undefined;
  createdAfter?: Date | undefined;
  limit: number;
  after?: { createdAt: Date; id: string } | undefined;
}

/** Newest first, keyset-paginated so that inserts do not shift pages. */
export async function listRuns(db: Db, f: ListFilter): Promise<RunRecord[]> {
  let q = db
    .selectFrom("runs")
    .select(runColumns.filter((c) => c !== "request_body" && c !== "response_body"))
    .select([sql<null>`null`.as("request_body"), sql<null>`null`.as("response_body")])
    .where("project_id", "=", f.project);
  if (f.app) q = q.where("app", "=", f.app);
  if (f.status) q = q.where("status", "=", f.status);
  if (f.createdAfter) q = q.where("created_at", ">", f.createdAfter);
  if (f.after) q = q.where(sql<boolean>`(created_at, id) < (${f.after.createdAt}, ${f.after.id}::uuid)`);
  return (await q.orderBy("created_at", "desc").orderBy("id", "desc").limit(f.limit).execute()) as unknown as RunRecord[];
}

/**
 * Makes an invoker the owner of a dispatched attempt, with a lease, and opens
 * its attempt record. Undefined when the attempt is not claimable.
 */
export async function claimRun(
  db: Kysely<SchedulerDb>,
  runId: string,
  attempt: number,
  invokerId: string,
  leaseSeconds: number,
): Promise<RunRecord | undefined> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .updateTable("runs")
      .set({
        status: "running",
        owner: invokerId,
        lease_expires_at: sql<Date>`now() + make_interval(secs => ${leaseSeconds})` as never,
        started_at: sql<Date>`coalesce(started_at, now())` as never,
      })
      .where("id", "=", runId)
      .where("attempt", "=", attempt)
      .where("status", "=", "dispatched")
      .returning(runColumns)
      .executeTakeFirst();
    if (!row) return undefined;
    await trx.insertInto("run_attempts").values({ run_id: runId, attempt, invoker_id: invokerId }).execute();
    return row as RunRecord;
  });
}

/** Extends the leases an invoker still holds; returns the ones it still owns. */
export async function extendLeases(
  db: Db,
  invokerId: string,
  held: { runId: string; attempt: number }[],
  leaseSeconds: number,
): Promise<Set<string>> {
  if (held.length === 0) return new Set();
  const rows = await db
    .updateTable("runs")
    .set({ lease_expires_at: sql<Date>`now() + make_interval(secs => ${leaseSeconds})` as never })
    .where("owner", "=", invokerId)
    .where("status", "=", "running")
    .where(
      sql<boolean>`(id, attempt) in (${sql.join(held.map((h) => sql`(${h.runId}::uuid, ${h.attempt}::int)`))})`,
    )
    .returning(["id", "attempt"])
    .execute();
  return new Set(rows.map((r) => `${r.id}:${r.attempt}`));
}

/** What an attempt ended with, to store. */
export interface AttemptResult {
  statusCode: number;
  headers: HeaderPair[];
  body: Buffer | null;
  bodyTruncated: boolean;
  errorCode: string;
  errorMessage: string;
}

export type EndedRun = { run: RunRecord; decision: Decision };

/**
 * Ends the attempt `attempt` of a run held by `owner` (null: whoever holds
 * it, for lost leases), applying the decision the core makes from the app's
 * policy. One transaction; undefined when the attempt is no longer that
 * owner's (late result, cancelled, reassigned).
 */
export async function endAttempt(
  db: Kysely<SchedulerDb>,
  runId: string,
  attempt: number,
  owner: string | null,
  result: AttemptResult,
  decideFor: (run: RunRecord, app: AppSettings | undefined) => Decision,
): Promise<EndedRun | undefined> {
  return db.transaction().execute(async (trx) => {
    let q = trx.selectFrom("runs").select(runColumns).where("id", "=", runId).where("attempt", "=", attempt).where("status", "=", "running");
    if (owner !== null) q = q.where("owner", "=", owner);
    const run = (await q.forUpdate().executeTakeFirst()) as RunRecord | undefined;
    if (!run) return undefined;
    const app = await findApp(trx, run.project_id, run.app);
    const decision = decideFor(run, app);
    await trx
      .updateTable("run_attempts")
      .set({
        finished_at: sql<Date>`now()` as never,
        status_code: result.statusCode || null,
        error_code: decision.kind === "succeeded" ? null : decision.errorCode,
        error_message: decision.kind === "succeeded" ? null : decision.errorMessage,
      })
      .where("run_id", "=", runId)
      .where("attempt", "=", attempt)
      .execute();
    const common = {
      owner: null,
      lease_expires_at: null,
      status_code: result.statusCode || null,
      response_headers: result.statusCode ? JSON.stringify(result.headers) : null,
      response_body: result.statusCode ? result.body : null,
      response_truncated: result.bodyTruncated,
    };
    const updated =
      decision.kind === "retry"
        ? await trx
            .updateTable("runs")
            .set({
              ...common,
              status: "queued",
              attempt: attempt + 1,
              dispatched_at: null,
              not_before: sql<Date>`now() + make_interval(secs => ${decision.delaySeconds})` as never,
              error_code: decision.errorCode,
              error_message: decision.errorMessage,
            })
            .where("id", "=", runId)
            .returning(runColumns)
            .executeTakeFirstOrThrow()
        : await trx
            .updateTable("runs")
            .set({
              ...common,
              status: decision.kind === "succeeded" ? "succeeded" : decision.status,
              finished_at: sql<Date>`now()` as never,
              error_code: decision.kind === "succeeded" ? null : decision.errorCode,
              error_message: decision.kind === "succeeded" ? null : decision.errorMessage,
              webhook_state: run.webhook_url ? "pending" : "none",
            })
            .where("id", "=", runId)
            .returning(runColumns)
            .executeTakeFirstOrThrow();
    return { run: updated as RunRecord, decision };
  });
}

/**
 * Cancels a run that has not finished. Returns the run after the change and
 * the owner that held it (to abort its call), or the unchanged run when it had
 * already finished.
 */
export async function cancelRun(
  db: Kysely<SchedulerDb>,
  project: string,
  runId: string,
): Promise<{ run: RunRecord; cancelled: boolean; previousOwner: string | null } | undefined> {
  return db.transaction().execute(async (trx) => {
    const before = (await trx
      .selectFrom("runs")
      .select(runColumns)
      .where("id", "=", runId)
      .where("project_id", "=", project)
      .forUpdate()
      .executeTakeFirst()) as RunRecord | undefined;
    if (!before) return undefined;
    if (!["queued", "dispatched", "running"].includes(before.status)) return { run: before, cancelled: false, previousOwner: null };
    const run = await trx
      .updateTable("runs")
      .set({
        status: "cancelled",
        finished_at: sql<Date>`now()` as never,
        owner: null,
        lease_expires_at: null,
        error_code: "cancelled_by_user",
        error_message: "cancelled by a user",
        webhook_state: before.webhook_url ? "pending" : "none",
      })
      .where("id", "=", runId)
      .returning(runColumns)
      .executeTakeFirstOrThrow();
    if (before.status === "running") {
      await trx
        .updateTable("run_attempts")
        .set({ finished_at: sql<Date>`now()` as never, error_code: "cancelled_by_user", error_message: "cancelled by a user" })
        .where("run_id", "=", runId)
        .where("attempt", "=", before.attempt)
        .execute();
    }
    return { run: run as RunRecord, cancelled: true, previousOwner: before.owner };
  });
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
  };
}

/** Sets the webhook state the notifier reports; the first report marks the run as taken. */
export async function setWebhookState(db: Db, runId: string, state: string): Promise<boolean> {
  const r = await db
    .updateTable("runs")
    .set({ webhook_state: state, webhook_taken_at: sql<Date>`coalesce(webhook_taken_at, now())` as never })
    .where("id", "=", runId)
    .where("webhook_url", "is not", null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}
