import { setTimeout as sleep } from "node:timers/promises";
import { sql, type Kysely } from "kysely";
import { Migrator, type Migration } from "kysely/migration";
import type { Logger } from "pino";
import { isDatabaseOutage } from "../errors.js";

/** Where a database stands against the migrations one build knows. */
export interface MigrationState {
  /** Known to this build and applied. */
  applied: string[];
  /** Known to this build, not applied yet: the migrate command has not run. */
  pending: string[];
  /** Applied by a newer build and unknown to this one (a rollback, or a newer copy ran the command). */
  unknown: string[];
}

/** One service's migrations and the table that records them. */
export interface MigrationSet {
  migrations: Record<string, Migration>;
  /** e.g. `scheduler_migrations`; its lock table is `<tableName>_lock`. */
  tableName: string;
}

/** Reads which migrations the database holds; a missing table means none. */
export async function migrationState<DB>(db: Kysely<DB>, set: MigrationSet): Promise<MigrationState> {
  let done: string[];
  try {
    const { rows } = await sql<{ name: string }>`select name from ${sql.table(set.tableName)}`.execute(db);
    done = rows.map((r) => r.name);
  } catch (err) {
    // 42P01 undefined_table: nothing was ever migrated here.
    if ((err as { code?: string }).code !== "42P01") throw err;
    done = [];
  }
  const known = Object.keys(set.migrations).sort();
  const doneSet = new Set(done);
  return {
    applied: known.filter((n) => doneSet.has(n)),
    pending: known.filter((n) => !doneSet.has(n)),
    unknown: done.filter((n) => !(n in set.migrations)).sort(),
  };
}

/**
 * Applies a service's pending migrations (the `longhaul-migrate` command, or a
 * service started with LONGHAUL_MIGRATE_AT_START=true). Kysely's Migrator
 * runs them in one transaction under a transaction-level advisory lock, so two
 * runs at once are safe.
 *
 * Two departures from Kysely's defaults, both for rolling deployments:
 * - `allowUnorderedMigrations`: migration names are claimed per engineer and
 *   land out of numeric order, so a database may hold 0017 before 0015 exists.
 * - Migrations the database holds but this build does not know (a newer
 *   release ran first; this is a rollback) are kept as applied no-ops instead
 *   of Kysely's "corrupted migrations: … is missing" refusal. Migrations
 *   expand the schema one release and contract it a release later, so an
 *   older build runs against a newer schema.
 */
export async function migrate<DB>(db: Kysely<DB>, set: MigrationSet, log: Logger): Promise<MigrationState> {
  const before = await migrationState(db, set);
  if (before.unknown.length > 0) {
    log.warn({ unknown: before.unknown }, "the database holds migrations newer than this build; they are left as they are");
  }
  const unknownAsApplied: Record<string, Migration> = Object.fromEntries(
    before.unknown.map((name) => [
      name,
      {
        up: () => Promise.reject(new Error(`migration ${name} is not part of this build`)),
      },
    ]),
  );
  const migrator = new Migrator({
    db,
    provider: { getMigrations: () => Promise.resolve({ ...set.migrations, ...unknownAsApplied }) },
    migrationTableName: set.tableName,
    migrationLockTableName: `${set.tableName}_lock`,
    allowUnorderedMigrations: true,
  });
  const { error, results } = await migrator.migrateToLatest();
  for (const r of results ?? []) {
    if (r.status === "Error") log.error({ migration: r.migrationName }, "migration failed");
    else if (r.status === "Success") log.info({ migration: r.migrationName }, "migrated");
  }
  if (error) throw error;
  return migrationState(db, set);
}

/** Thrown when the migrations a service needs were not applied in time. */
export class SchemaNotReadyError extends Error {
  override readonly name = "SchemaNotReadyError";
}

/** Options of {@link waitForMigrations}. */
export interface WaitForMigrationsOptions {
  /** Gives up after this long; 0 checks once. @default 600000 */
  timeoutMs?: number;
  /** @default 2000 */
  intervalMs?: number;
}

/**
 * Resolves once every migration this build knows is applied: a service that
 * does not migrate at start waits here for the migrate command (a Kubernetes
 * Job applied with the new release) instead of serving against an old schema.
 * Migrations newer than the build are fine. Postgres being down, the database
 * not existing yet or migrations still pending are waited out; anything else
 * is thrown.
 */
export async function waitForMigrations<DB>(
  db: Kysely<DB>,
  set: MigrationSet,
  log: Logger,
  options: WaitForMigrationsOptions = {},
): Promise<MigrationState> {
  const deadline = Date.now() + (options.timeoutMs ?? 600_000);
  const intervalMs = options.intervalMs ?? 2_000;
  let lastReason = "";
  for (;;) {
    let reason: string;
    try {
      const state = await migrationState(db, set);
      if (state.pending.length === 0) {
        if (state.unknown.length > 0) log.info({ unknown: state.unknown }, "the database holds migrations newer than this build");
        return state;
      }
      reason = `migrations not applied yet: ${state.pending.join(", ")}`;
    } catch (err) {
      const code = (err as { code?: string }).code;
      // 3D000 invalid_catalog_name: the database is not created yet (the migrate command creates it).
      if (code !== "3D000" && !isDatabaseOutage(err) && code !== "ENOTFOUND" && code !== "EAI_AGAIN") throw err;
      reason = `postgres not ready (${(err as Error).message})`;
    }
    if (Date.now() >= deadline) {
      throw new SchemaNotReadyError(
        `${set.tableName}: ${reason}; run the migrate command (npm run migrate, or longhaul-migrate in the image) against this database`,
      );
    }
    if (reason !== lastReason) log.warn(`waiting for the migrate command: ${reason}`);
    lastReason = reason;
    await sleep(intervalMs);
  }
}

/** Options of {@link readySchema}: a service's {@link SchemaConfig}-shaped settings. */
export interface ReadySchemaOptions {
  LONGHAUL_MIGRATE_AT_START: boolean;
  LONGHAUL_MIGRATION_WAIT_SECONDS: number;
}

/**
 * At a service's start: migrates when told to (LONGHAUL_MIGRATE_AT_START),
 * else waits for the migrate command to have applied what this build needs.
 */
export async function readySchema<DB>(db: Kysely<DB>, set: MigrationSet, options: ReadySchemaOptions, log: Logger): Promise<MigrationState> {
  if (options.LONGHAUL_MIGRATE_AT_START) return migrate(db, set, log);
  return waitForMigrations(db, set, log, { timeoutMs: options.LONGHAUL_MIGRATION_WAIT_SECONDS * 1000 });
}
