import { sql, type Kysely } from "kysely";
import type { AppSettings, RunRecord } from "../../core/model.js";
import type { AttemptResult } from "../../core/ports.js";
import type { Decision } from "../../core/retry-policy.js";
import { lostLease } from "./maintenance-store.js";
import { runColumns } from "./run-columns.js";
import { joinedApp, joinedAppColumns } from "./run-queries.js";
import type { SchedulerDb } from "./schema.js";

/** `limited`: the app has a concurrency limit, so the freed slot may start a queued run. */
export type EndedRun = { run: RunRecord; decision: Decision; limited: boolean };

/**
 * Ends the attempt `attempt` of a run held by `owner` (null: whoever holds
 * it, for lost leases), applying the decision the core makes from the app's
 * policy. One transaction; undefined when the attempt is no longer that
 * owner's (late result, cancelled, reassigned) or, with owner null, when the
 * lease is no longer lost.
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
    // The run (locked) and its app in one read.
    let q = trx
      .selectFrom("runs")
      .leftJoin("apps", (join) => join.onRef("apps.project_id", "=", "runs.project_id").onRef("apps.name", "=", "runs.app"))
      .select(runColumns.map((c) => `runs.${c}` as const))
      .select(joinedAppColumns)
      .where("runs.id", "=", runId)
      .where("runs.attempt", "=", attempt)
      .where("runs.status", "=", "running");
    if (owner !== null) q = q.where("runs.owner", "=", owner);
    // A lost lease is checked again under the row lock: a heartbeat between
    // the reconciler's read and this statement keeps the call alive.
    else q = q.where(lostLease);
    const row = await q.forUpdate("runs").executeTakeFirst();
    if (!row) return undefined;
    const run = row as unknown as RunRecord;
    const app = joinedApp(row);
    const decision = decideFor(run, app);
    const common = {
      owner: null,
      lease_expires_at: null,
      status_code: result.statusCode || null,
      response_headers: result.statusCode ? JSON.stringify(result.headers) : null,
      response_body: result.statusCode ? result.body : null,
      response_truncated: result.bodyTruncated,
    };
    // The attempt's record and the run in one statement.
    const withAttempt = trx.with("ended_attempt", (db) =>
      db
        .updateTable("run_attempts")
        .set({
          finished_at: sql<Date>`now()` as never,
          status_code: result.statusCode || null,
          error_code: decision.kind === "succeeded" ? null : decision.errorCode,
          error_message: decision.kind === "succeeded" ? null : decision.errorMessage,
        })
        .where("run_id", "=", runId)
        .where("attempt", "=", attempt),
    );
    const updated =
      decision.kind === "retry"
        ? await withAttempt
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
        : await withAttempt
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
    return { run: updated as RunRecord, decision, limited: (app?.maxConcurrency ?? 0) > 0 };
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

