// Retention's statements on a real Postgres, with backdated rows: small
// batches, runs that ended at one instant never split by the body pass's
// mark, nothing newer touched, and a probe that says when there is nothing to do.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { createDb, migrate } from "@longhaul/shared/db";
import { sql, type Kysely } from "kysely";
import { createTestDatabase } from "../../../../../tests/helpers/isolation.js";
import { ensureProjectKey } from "./app-store.js";
import { schedulerMigrationSet } from "./migrations.js";
import { deleteOldRuns, dropOldBodies, eraseRun, retentionDue } from "./retention.js";
import type { SchedulerDb } from "./schema.js";

const DAY = 86_400;
const log = createLogger("test", "silent");
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Kysely<SchedulerDb>;

beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb<SchedulerDb>({ url: database.url, log });
  await migrate(db, schedulerMigrationSet, log);
  await ensureProjectKey(db, "p1", "key-one-0123456789");
});

afterAll(async () => {
  await db?.destroy();
  await database?.drop();
});

/** `n` finished runs that ended `ageDays` ago, all at the same instant, each with an attempt and an Idempotency-Key. */
async function finishedRuns(n: number, ageDays: number, tag: string): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    with made as (
      insert into runs (id, project_id, app, mode, status, method, path, upstream_url, timeout_seconds, max_attempts,
                        request_headers, request_body, response_headers, response_body, idempotency_key, created_at, finished_at)
      select gen_random_uuid(), 'p1', 'a', 'async', 'succeeded', 'POST', '/', 'http://app', 60, 1,
             '[{"name":"x-user","value":"alice"}]', 'req', '[{"name":"content-type","value":"text/plain"}]', 'res',
             ${tag} || g, now() - make_interval(days => ${ageDays}), now() - make_interval(days => ${ageDays})
      from generate_series(1, ${n}) g
      returning id, idempotency_key
    ), attempts as (
      insert into run_attempts (run_id, attempt, invoker_id) select id, 1, 'inv' from made
    ), keys as (
      insert into idempotency_keys (project_id, key, run_id, request_hash, expires_at)
      select 'p1', idempotency_key, id, 'h', now() - interval '1 day' from made
    )
    select id from made`.execute(db);
  return rows.map((r) => r.id);
}

async function count(q: ReturnType<typeof sql<{ n: number }>>): Promise<number> {
  return (await q.execute(db)).rows[0]!.n;
}

describe("retention", () => {
  it("drops bodies and deletes runs in small batches, touching nothing newer, and then finds nothing to do", async () => {
    const expired = await finishedRuns(7, 40, "old-");
    const aging = await finishedRuns(5, 10, "aging-");
    const fresh = await finishedRuns(3, 1, "fresh-");
    const running = await finishedRuns(1, 40, "running-");
    await sql`update runs set status = 'running', finished_at = null where id = ${running[0]!}`.execute(db);

    expect(await retentionDue(db, 7 * DAY, 30 * DAY)).toEqual({ bodies: true, runs: true, sessions: false });

    // Bodies: 12 runs past 7 days, in batches of 2. Runs that ended at one
    // instant go together (one batch here takes all 7 old ones, then all 5).
    const passes: { runs: number; moved: boolean }[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await dropOldBodies(db, 7 * DAY, 2);
      passes.push(r);
      if (!r.moved) break;
    }
    expect(passes).toEqual([{ runs: 7, moved: true }, { runs: 5, moved: true }, { runs: 0, moved: false }]);
    const withBodies = (ids: string[]) =>
      count(sql<{ n: number }>`select count(*)::int as n from runs where id = any(${ids}::uuid[]) and request_body is not null and response_body is not null`);
    expect(await withBodies([...expired, ...aging])).toBe(0);
    expect(await withBodies([...fresh, ...running])).toBe(4);

    // Whole rows: 7 runs past 30 days, 3 a statement, with their attempts and keys.
    const deleted: number[] = [];
    for (let n = -1; n !== 0; ) deleted.push((n = await deleteOldRuns(db, 30 * DAY, 3)));
    expect(deleted).toEqual([3, 3, 1, 0]);
    const left = (table: string, ids: string[]) =>
      count(sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)} where ${sql.ref(table === "runs" ? "id" : "run_id")} = any(${ids}::uuid[])`);
    expect(await left("runs", expired)).toBe(0);
    expect(await left("run_attempts", expired)).toBe(0);
    expect(await left("idempotency_keys", expired)).toBe(0);
    expect(await left("runs", [...aging, ...fresh, ...running])).toBe(9);
    expect(await left("idempotency_keys", [...aging, ...fresh, ...running])).toBe(9);

    // Nothing left to do: the probe says so (the body mark is past every run it dropped).
    expect(await retentionDue(db, 7 * DAY, 30 * DAY)).toEqual({ bodies: false, runs: false, sessions: false });
  });

  it("erases a finished run's bodies and headers with an audit entry, and leaves a running one alone", async () => {
    const [done] = await finishedRuns(1, 0, "erase-");
    const [busy] = await finishedRuns(1, 0, "erase-busy-");
    await sql`update runs set status = 'running', finished_at = null where id = ${busy!}`.execute(db);

    expect(await eraseRun(db, "p2", done!, "key:x")).toBeUndefined();
    const refused = await eraseRun(db, "p1", busy!, "key:x");
    expect(refused?.erased).toBe(false);
    expect(refused?.run.request_body?.toString()).toBe("req");

    const erased = await eraseRun(db, "p1", done!, "key:k1");
    expect(erased?.erased).toBe(true);
    expect(erased?.run).toMatchObject({ request_body: null, response_body: null, request_headers: [], response_headers: [], status: "succeeded" });
    const audit = await db.selectFrom("admin_audit").selectAll().where("target", "=", done!).execute();
    expect(audit).toMatchObject([{ actor: "key:k1", action: "run.erase", project_id: "p1" }]);
  });
});
