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
    // Two arrays unnested, not a row-value IN list: Postgres fails a list of
    // several thousand tuples with "stack depth limit exceeded".
    .where(
      sql<boolean>`(id, attempt) in (select * from unnest(${held.map((h) => h.runId)}::uuid[], ${held.map((h) => h.attempt)}::int[]))`,
    )
    .returning(["id", "attempt"])
    .execute();
  return new Set(rows.map((r) => `${r.id}:${r.attempt}`));
}

