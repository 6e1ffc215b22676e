import { sql, type Kysely } from "kysely";
import type { RetentionDue } from "../../core/ports.js";
import type { RunRecord } from "../../core/model.js";
import { runColumns } from "./run-columns.js";
import type { SchedulerDb } from "./schema.js";
import { recordAudit } from "./tenancy-store.js";

/**
 * Which retention passes have work, in one read. Each test is answered by an
 * index alone (runs_finished_at; the sessions table is a row per invoker), so
 * a mesh with nothing to delete pays one small statement per pass and reads
 * no run. The bodies test starts where the last body pass stopped
 * (run_retention.bodies_until), so runs whose bodies are already gone are
 * never read again.
 */
export async function retentionDue(db: Kysely<SchedulerDb>, bodySeconds: number, runSeconds: number): Promise<RetentionDue> {
  const { rows } = await sql<RetentionDue>`
    select
      exists (select 1 from runs
              where finished_at > (select bodies_until from run_retention where id = 1)
                and finished_at < now() - make_interval(secs => ${bodySeconds})) as bodies,
      exists (select 1 from runs where finished_at < now() - make_interval(secs => ${runSeconds})) as runs,
      exists (select 1 from invoker_sessions where lease_expires_at < now() - interval '1 hour') as sessions
  `.execute(db);
  return rows[0]!;
}

/**
 * Drops the request and response bodies of the next `batch` runs (by
 * finished_at) that ended before the body retention period, and moves the
 * pass's mark past them, in one statement (so the mark keeps Postgres's
 * microseconds). Runs that ended at the same instant as the batch's last one
 * go with it, so the mark never splits them. Another copy at the same work
 * makes this one skip (the mark's row is locked). Returns how many runs lost
 * bodies and whether the mark moved.
 */
export async function dropOldBodies(
  db: Kysely<SchedulerDb>,
  retentionSeconds: number,
  batch: number,
): Promise<{ runs: number; moved: boolean }> {
  const { rows } = await sql<{ runs: number; moved: boolean }>`
    with mark as (
      select bodies_until from run_retention where id = 1 for update skip locked
    ), bound as (
      select max(s.finished_at) as until from (
        select r.finished_at from runs r, mark
        where r.finished_at > mark.bodies_until and r.finished_at < now() - make_interval(secs => ${retentionSeconds})
        order by r.finished_at limit ${batch}) s
    ), dropped as (
      update runs r set request_body = null, response_body = null
      from mark, bound
      where r.finished_at > mark.bodies_until and r.finished_at <= bound.until
        and (r.request_body is not null or r.response_body is not null)
      returning 1
    ), moved as (
      update run_retention set bodies_until = bound.until
      from bound where id = 1 and bound.until is not null
      returning 1
    )
    select (select count(*) from dropped)::int as runs, exists (select 1 from moved) as moved`.execute(db);
  return rows[0] ?? { runs: 0, moved: false };
}

/**
 * Deletes up to `batch` runs that ended before the run retention period,
 * oldest first, in one statement: their attempts go by the foreign key's
 * cascade, and the Idempotency-Keys that still name them go too (a key that
 * names a deleted run could only answer with a run that no longer exists).
 * Rows another transaction holds are skipped, not waited for.
 */
export async function deleteOldRuns(db: Kysely<SchedulerDb>, retentionSeconds: number, batch: number): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    with doomed as (
      select id from runs
      where finished_at < now() - make_interval(secs => ${retentionSeconds})
      order by finished_at limit ${batch}
      for update skip locked
    ), gone as (
      delete from runs r using doomed d where r.id = d.id
      returning r.id, r.project_id, r.idempotency_key
    ), keys as (
      delete from idempotency_keys k using gone g
      where g.idempotency_key is not null and k.project_id = g.project_id and k.key = g.idempotency_key and k.run_id = g.id
    )
    select count(*)::int as n from gone`.execute(db);
  return rows[0]?.n ?? 0;
}

/**
 * Erases a finished run's request and response bodies and headers at once
 * (personal data), and records who did it in the audit log, in one
 * transaction. Undefined when the project has no such run; `erased: false`
 * (nothing changed) when the run has not finished.
 */
export async function eraseRun(
  db: Kysely<SchedulerDb>,
  project: string,
  runId: string,
  actor: string,
): Promise<{ run: RunRecord; erased: boolean } | undefined> {
  return db.transaction().execute(async (trx) => {
    const before = await trx
      .selectFrom("runs")
      .select(["id", "finished_at"])
      .where("id", "=", runId)
      .where("project_id", "=", project)
      .forUpdate()
      .executeTakeFirst();
    if (!before) return undefined;
    if (before.finished_at === null) {
      const run = (await trx.selectFrom("runs").select(runColumns).where("id", "=", runId).executeTakeFirstOrThrow()) as RunRecord;
      return { run, erased: false };
    }
    const run = await trx
      .updateTable("runs")
      .set({
        request_body: null,
        response_body: null,
        request_headers: "[]",
        response_headers: sql<string | null>`case when response_headers is null then null else '[]'::jsonb end`,
      })
      .where("id", "=", runId)
      .returning(runColumns)
      .executeTakeFirstOrThrow();
    await recordAudit(trx, { actor, action: "run.erase", project, target: runId });
    return { run: run as RunRecord, erased: true };
  });
}
