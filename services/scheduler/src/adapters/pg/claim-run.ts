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

/** The attempts handed back, as dispatches to publish. */
interface Returned {
  id: string;
  attempt: number;
  project_id: string;
  app: string;
  traceparent: string;
}

/**
 * Puts running attempts of `invokerId` back to dispatched, and drops their
 * attempt records: the invoker never had them, so nothing was sent (the
 * caller's word). `orphans` is a query of (id, attempt) to hand back.
 */
function handBack(invokerId: string, orphans: ReturnType<typeof sql>) {
  return sql<Returned>`
    with orphans as (${orphans}), back as (
      update runs set
        status = 'dispatched',
        owner = null,
        lease_expires_at = null,
        dispatched_at = now(),
        -- A first attempt never started; a retry keeps its run's first start.
        started_at = case when runs.attempt = 1 then null else runs.started_at end
      from orphans o
      where runs.id = o.id and runs.attempt = o.attempt and runs.status = 'running' and runs.owner = ${invokerId}
      returning runs.id, runs.attempt, runs.project_id, runs.app, runs.traceparent
    ), dropped as (
      delete from run_attempts a using back b where a.run_id = b.id and a.attempt = b.attempt
    )
    select * from back`;
}

/** Hands back attempts started for an invoker that never reached it (its stream closed first). */
export async function returnRuns(db: Db, invokerId: string, runs: { runId: string; attempt: number }[]): Promise<Returned[]> {
  if (runs.length === 0) return [];
  const listed = sql`select * from unnest(${runs.map((r) => r.runId)}::uuid[], ${runs.map((r) => r.attempt)}::int[]) as w(id, attempt)`;
  const { rows } = await handBack(invokerId, listed).execute(db);
  return rows;
}

/**
 * Hands back what was started for an invoker on Handoff streams it saw end
 * and does not hold (HandoffHello, Heartbeat): it never received those. Only
 * attempts opened on those streams are looked at, never a claimed one (whose
 * answer may still be on its way).
 */
export async function returnOrphans(
  db: Db,
  invokerId: string,
  held: { runId: string; attempt: number }[],
  endedStreams: string[],
): Promise<Returned[]> {
  if (endedStreams.length === 0) return [];
  const orphans = sql`
    select r.id, r.attempt from run_attempts a
    join runs r on r.id = a.run_id and r.attempt = a.attempt
    where a.handoff_stream = any(${endedStreams}::uuid[]) and a.invoker_id = ${invokerId}
      and r.owner = ${invokerId} and r.status = 'running'
      and not exists (
        select 1 from unnest(${held.map((h) => h.runId)}::uuid[], ${held.map((h) => h.attempt)}::int[]) as h(id, attempt)
        where h.id = r.id and h.attempt = r.attempt)`;
  const { rows } = await handBack(invokerId, orphans).execute(db);
  return rows;
}
