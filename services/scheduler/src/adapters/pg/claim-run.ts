import { sql, type Kysely } from "kysely";
import type { RunRecord } from "../../core/model.js";
import { runColumns, type Db } from "./run-columns.js";
import type { SchedulerDb } from "./schema.js";

/**
 * Makes an invoker the owner of a dispatched attempt, with a lease, and opens
 * its attempt record. The same invoker claiming the same attempt again gets
 * it again (its first answer may have missed the deadline, and the dispatch
 * came back): claims are idempotent per invoker. Undefined when the attempt
 * is not claimable.
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
      .where((eb) =>
        eb.or([eb("status", "=", "dispatched"), eb.and([eb("status", "=", "running"), eb("owner", "=", invokerId)])]),
      )
      .returning(runColumns)
      .executeTakeFirst();
    if (!row) return undefined;
    // Every owner has a session row, so a lost invoker's runs are found from
    // it (maintenance-store expiredLeases). An existing row is left alone (no
    // row lock shared by an invoker's concurrent claims): the run's own lease
    // covers the call until the invoker's next heartbeat renews it.
    await sql`insert into invoker_sessions (invoker_id, lease_expires_at)
      values (${invokerId}, now() + make_interval(secs => ${leaseSeconds})) on conflict (invoker_id) do nothing`.execute(trx);
    const existing = await trx
      .selectFrom("run_attempts")
      .select("attempt")
      .where("run_id", "=", runId)
      .where("attempt", "=", attempt)
      .executeTakeFirst();
    if (existing) return row as RunRecord;
    await trx.insertInto("run_attempts").values({ run_id: runId, attempt, invoker_id: invokerId }).execute();
    return row as RunRecord;
  });
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
