import { sql } from "kysely";
import type { Db } from "./run-columns.js";

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
