import { randomUUID } from "node:crypto";
import { sql, type Kysely, type Transaction } from "kysely";
import { LonghaulError } from "@longhaul/shared/errors";
import type { AppSettings, StartedRun } from "../../core/model.js";
import type { NewRun as NewRunInput, StartFor, SubmitOutcome } from "../../core/ports.js";
import { findApp } from "./run-queries.js";
import type { SubmitSettings } from "./submit-settings.js";
import { admitSubmit } from "./tenancy-store.js";
import type { Db } from "./run-columns.js";
import { insertRuns, type NewRunRow } from "./batched.js";
import type { SchedulerDb } from "./schema.js";


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
export async function insertRun(db: Kysely<SchedulerDb>, input: NewRunInput): Promise<SubmitOutcome> {
  return db.transaction().execute((trx) => insertRunIn(trx, input, randomUUID()));
}

/** Inserts one run row; false when a run with its id exists (shared by concurrent submits: batched.ts). */
export type InsertRow = (row: NewRunRow) => Promise<boolean>;

/**
 * The answer to a submit whose run id (chosen by the caller: a gateway that
 * resends a submit to another scheduler sends the same id) is taken: the same
 * submit seen again when the run is the caller's project's, else a conflict.
 */
async function alreadySubmitted(db: Db, project: string, runId: string): Promise<SubmitOutcome> {
  const prior = await db.selectFrom("runs").select("project_id").where("id", "=", runId).executeTakeFirst();
  if (!prior || prior.project_id !== project) {
    throw new LonghaulError("already_exists", `run id ${runId} is taken`);
  }
  return { runId, existing: true, dispatch: null, started: null };
}

/**
 * Looks the app up and stores the run built from it, in one commit. `build` validates against the app and may throw:
 * then nothing is stored.
 */
export async function submitRun(
  db: Kysely<SchedulerDb>,
  insert: InsertRow,
  settings: (project: string, app: string) => Promise<SubmitSettings | undefined>,
  project: string,
  appName: string,
  build: (app: AppSettings) => NewRunInput,
  chosenRunId?: string,
  startFor?: StartFor,
): Promise<SubmitOutcome> {
  const runId = chosenRunId ?? randomUUID();
  // The common case in one statement and no transaction: the project (no
  // limits) and the app (no concurrency limit, not paused) as the settings
  // cache knows them (submit-settings.ts), then the run inserted as
  // dispatched, its commit shared with concurrent submits. Anything that needs
  // a lock or a count (limits, Idempotency-Key, a delay) takes the
  // transaction, which reads the settings again.
  const found = await settings(project, appName);
  const joined = found?.app;
  if (found?.unlimited && joined && joined.maxConcurrency === 0 && !joined.paused) {
    const app = joined;
    const input = build(app);
    const delayed = input.notBefore !== null && input.notBefore.getTime() > Date.now();
    if (!input.idempotencyKey && !delayed) {
      // One multi-row insert and one commit with the concurrent submits (group commit).
      // With an invoker's credit (a handoff) the run is stored started for it: the submit is its claim.
      const row = startFor ? runRow(input, runId, "running", startFor) : runRow(input, runId, "dispatched");
      if (!(await insert(row))) return alreadySubmitted(db, project, runId);
      if (startFor) return { runId, existing: false, dispatch: null, started: startedOf(input, runId) };
      return { runId, existing: false, dispatch: { runId, attempt: 1, project: input.project, app: app.name, traceparent: input.traceparent }, started: null };
    }
  }
  return db.transaction().execute(async (trx) => {
    // The project's limits first (its row lock comes before the app's).
    const projectRoom = await admitSubmit(trx, project);
    const app = await findApp(trx, project, appName);
    if (!app) throw new LonghaulError("not_found", `app ${appName} not found`);
    return insertRunIn(trx, build(app), runId, projectRoom);
  });
}

/** `projectRoom`: runs the project may still start under its max_in_flight (a run past it waits queued). */
async function insertRunIn(
  trx: Transaction<SchedulerDb>,
  input: NewRunInput,
  runId: string,
  projectRoom = Number.POSITIVE_INFINITY,
): Promise<SubmitOutcome> {
  {
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
        return { runId: prior.run_id, existing: true, dispatch: null, started: null };
      }
    }
    const delayed = input.notBefore !== null && input.notBefore.getTime() > Date.now();
    let status: "queued" | "dispatched" = "queued";
    if (!delayed) {
      // A paused app's runs wait queued (PauseApp) until it is resumed.
      const room = projectRoom > 0 && !input.app.paused ? await roomForApp(trx, input.project, input.app) : 0;
      if (room > 0) status = "dispatched";
      else await refuseWhenQueueFull(trx, input);
    }
    const inserted = await insertRuns(trx, [runRow(input, runId, status)]);
    if (!inserted.has(runId)) return alreadySubmitted(trx, input.project, runId);
    const dispatch =
      status === "dispatched"
        ? { runId, attempt: 1, project: input.project, app: input.app.name, traceparent: input.traceparent }
        : null;
    return { runId, existing: false, dispatch, started: null };
  }
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

/** What the invoker a new run was started for needs for its call. */
function startedOf(input: NewRunInput, runId: string): StartedRun {
  return {
    runId,
    attempt: 1,
    project: input.project,
    app: input.app.name,
    upstreamUrl: input.app.url,
    method: input.method,
    path: input.path,
    query: input.query,
    headers: input.headers,
    body: input.body,
    timeoutSeconds: input.timeoutSeconds,
    traceparent: input.traceparent,
    tracestate: input.tracestate,
  };
}

/** The row of a new run; a running one is started for `startFor`'s invoker. */
function runRow(
  input: NewRunInput,
  runId: string,
  status: NewRunRow["status"],
  startFor?: StartFor,
): NewRunRow {
  return {
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
      expires_at: input.expiresAt,
      traceparent: input.traceparent,
      tracestate: input.tracestate,
      labels: JSON.stringify(input.labels),
      owner: startFor?.invokerId ?? null,
      lease_seconds: startFor?.leaseSeconds ?? 0,
      handoff_stream: startFor?.streamId ?? null,
  };
}
