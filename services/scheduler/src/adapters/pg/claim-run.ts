import { sql, type Kysely } from "kysely";
import type { RunRecord } from "../../core/model.js";
import { runColumns, type Db } from "./run-columns.js";
import type { SchedulerDb } from "./schema.js";

/**
 * Makes an invoker the owner of a dispatched attempt, with a lease, and opens
 * its attempt record, in one statement (one round trip, one commit). The same
 * invoker claiming the same attempt again gets it again (its first answer may
 * have missed the deadline, and the dispatch came back): claims are idempotent
 * per invoker. Undefined when the attempt is not claimable.
 *
 * Every owner gets a session row, so a lost invoker's runs are found from it
 * (maintenance-store expiredLeases). An existing row is left alone (no row
 * lock shared by an invoker's concurrent claims): the run's own lease covers
 * the call until the invoker's next heartbeat renews the session.
 */
export async function claimRun(
  db: Kysely<SchedulerDb>,
  runId: string,
  attempt: number,
  invokerId: string,
  leaseSeconds: number,
): Promise<RunRecord | undefined> {
  const { rows } = await sql<RunRecord>`
    with claimed as (
      update runs set
        status = 'running',
        owner = ${invokerId},
        lease_expires_at = now() + make_interval(secs => ${leaseSeconds}),
        started_at = coalesce(started_at, now())
      where id = ${runId} and attempt = ${attempt}
        and (status = 'dispatched' or (status = 'running' and owner = ${invokerId}))
      returning ${sql.join(runColumns.map((c) => sql.ref(c)))}
    ), session as (
      insert into invoker_sessions (invoker_id, lease_expires_at)
      select ${invokerId}, now() + make_interval(secs => ${leaseSeconds}) from claimed
      on conflict (invoker_id) do nothing
    ), opened as (
      insert into run_attempts (run_id, attempt, invoker_id)
      select id, attempt, ${invokerId} from claimed
      on conflict (run_id, attempt) do nothing
    )
    select * from claimed`.execute(db);
  return rows[0];
}

/**
 * One heartbeat of an invoker, one statement: renews the invoker's own lease
 * (one row, however many calls it holds) and returns which of the attempts it
 * names it still owns. Run rows are not written: a held call costs Postgres
 * nothing per beat.
 */
export async function renewSession(
  db: Db,
  invokerId: string,
  held: { runId: string; attempt: number }[],
  leaseSeconds: number,
): Promise<Set<string>> {
  // Two arrays unnested, not a row-value IN list: Postgres fails a list of
  // several thousand tuples with "stack depth limit exceeded". The upsert is a
  // data-modifying CTE: Postgres runs it whether or not the select reads it.
  const { rows } = await sql<{ id: string; attempt: number }>`
    with renewed as (
      insert into invoker_sessions (invoker_id, lease_expires_at)
      values (${invokerId}, now() + make_interval(secs => ${leaseSeconds}))
      on conflict (invoker_id) do update set lease_expires_at = excluded.lease_expires_at
    )
    select r.id, r.attempt from runs r
    where (r.id, r.attempt) in (select * from unnest(${held.map((h) => h.runId)}::uuid[], ${held.map((h) => h.attempt)}::int[]))
      and r.owner = ${invokerId} and r.status = 'running'`.execute(db);
  return new Set(rows.map((r) => `${r.id}:${r.attempt}`));
}
