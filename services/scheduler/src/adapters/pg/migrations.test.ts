// The scheduler's migrations against a real Postgres. Kysely's Migrator runs
// every pending migration of a batch in one transaction, so a `set local` in
// one of them would last into the ones after it unless it is put back.
import { afterAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { createDb, migrate, sql, type MigrationSet } from "@longhaul/shared/db";
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";
import pg from "pg";
import { createTestDatabase } from "../../../../../tests/helpers/isolation.js";
import { schedulerMigrationSet } from "./migrations.js";

const log = createLogger("test", "silent");
const databases: Awaited<ReturnType<typeof createTestDatabase>>[] = [];
const dbs: Kysely<unknown>[] = [];

async function freshDb(): Promise<{ db: Kysely<unknown>; url: string }> {
  const database = await createTestDatabase();
  databases.push(database);
  const db = createDb<unknown>({ url: database.url, log });
  dbs.push(db);
  return { db, url: database.url };
}

/** The scheduler's migrations, up to `last` (its name included), plus `extra`. */
function migrationsUpTo(last: string, extra: Record<string, Migration> = {}): MigrationSet {
  const kept = Object.entries(schedulerMigrationSet.migrations).filter(([name]) => name <= last);
  return { tableName: schedulerMigrationSet.tableName, migrations: { ...Object.fromEntries(kept), ...extra } };
}

/** A migration that only records the lock_timeout it runs under. */
function probe(seen: string[]): Migration {
  return {
    async up(db) {
      const { rows } = await sql<{ v: string }>`select current_setting('lock_timeout') as v`.execute(db);
      seen.push(rows[0]!.v);
    },
  };
}

afterAll(async () => {
  for (const db of dbs) await db.destroy();
  for (const d of databases) await d.drop();
});

describe("0018_runs_expires_at", () => {
  it("its 5 s lock_timeout ends with it: a later migration of the same batch runs under the timeout the batch began with", async () => {
    const { db } = await freshDb();
    const before: string[] = [];
    const after: string[] = [];
    // A fresh database: every migration, 0018 among them, is one batch, in name order.
    const set = migrationsUpTo("0018_runs_expires_at", { "0017_zz_before": probe(before), "0019_after": probe(after) });
    const state = await migrate(db, set, log);
    expect(state.pending).toEqual([]);
    expect(state.applied).toEqual(expect.arrayContaining(["0017_zz_before", "0018_runs_expires_at", "0019_after"]));
    expect(before).toHaveLength(1);
    expect(before[0]).not.toBe("5s");
    expect(after).toEqual(before);
  });

  it("still waits at most 5 s for its lock on runs, fails, and applies once the lock is free", async () => {
    const { db, url } = await freshDb();
    await migrate(db, migrationsUpTo("0017_runs_not_before"), log);
    // A long transaction that read runs: adding the column must wait for it.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query("begin");
      await holder.query("lock table runs in access share mode");
      const started = Date.now();
      const failed = await migrate(db, schedulerMigrationSet, log).then(
        () => undefined,
        (err: unknown) => err as { code?: string },
      );
      const waited = Date.now() - started;
      expect(failed?.code).toBe("55P03"); // lock_not_available
      expect(waited).toBeGreaterThanOrEqual(4_900);
      expect(waited).toBeLessThan(15_000);
      await holder.query("rollback");
    } finally {
      await holder.end();
    }
    const state = await migrate(db, schedulerMigrationSet, log);
    expect(state.applied).toContain("0018_runs_expires_at");
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from information_schema.columns where table_name = 'runs' and column_name = 'expires_at'`.execute(db);
    expect(rows[0]!.n).toBe(1);
  });
});
