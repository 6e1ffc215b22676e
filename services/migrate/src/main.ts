import { createLogger } from "@longhaul/shared/logger";
import { createDb, ensureDatabase, migrate } from "@longhaul/shared/db";
import { schedulerMigrationSet } from "@longhaul/scheduler/adapters/pg/migrations";
import { notifierMigrationSet } from "@longhaul/notifier/adapters/pg/migrations";
import { loadConfig } from "./config.js";

// `longhaul-migrate` (`npm run migrate`; the Kubernetes Job `longhaul-migrate`):
// applies every service's pending migrations, then exits 0. Run it before a
// rollout; services wait for it (LONGHAUL_MIGRATION_WAIT_SECONDS).
const config = loadConfig(process.env);
const log = createLogger("migrate", config.LOG_LEVEL);
const url = config.LONGHAUL_MIGRATE_DATABASE_URL ?? config.DATABASE_URL;

try {
  if (config.LONGHAUL_ENSURE_DATABASE) await ensureDatabase(url);
  const db = createDb({ url, log, poolSize: 1 });
  try {
    for (const set of [schedulerMigrationSet, notifierMigrationSet]) {
      const state = await migrate(db, set, log);
      log.info({ table: set.tableName, applied: state.applied.length, newer: state.unknown }, "schema up to date");
    }
  } finally {
    await db.destroy();
  }
  log.info("migrations done");
} catch (err) {
  log.fatal({ err }, "migrations failed");
  process.exitCode = 1;
}
