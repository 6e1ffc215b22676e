import { sql, type Migration, type MigrationSet } from "@longhaul/shared/db";

/**
 * The notifier's schema, applied by the migrate command under the table
 * `notifier_migrations`. Append new migrations; never edit an applied one.
 */
export const notifierMigrations: Record<string, Migration> = {
  "0001_webhooks": {
    async up(db) {
      await sql`
        create table webhook_secrets (
          project_id text primary key,
          secret text not null,
          previous_secret text,
          previous_expires_at timestamptz,
          created_at timestamptz not null default now(),
          rotated_at timestamptz
        )`.execute(db);
      await sql`
        create table webhook_deliveries (
          run_id uuid primary key,
          project_id text not null,
          webhook_id text not null,
          url text not null,
          state text not null check (state in ('pending', 'delivered', 'failed')),
          attempts_made integer not null default 0,
          series_start integer not null default 0,
          next_attempt_at timestamptz,
          locked_until timestamptz,
          lease_token uuid,
          last_error text,
          reported_state text,
          created_at timestamptz not null default now(),
          updated_at timestamptz not null default now()
        )`.execute(db);
      // The poller's question: pending and due, oldest first.
      await sql`
        create index webhook_deliveries_due on webhook_deliveries (next_attempt_at)
        where state = 'pending'`.execute(db);
      // The report sweep's question: states the scheduler has not been told.
      await sql`
        create index webhook_deliveries_unreported on webhook_deliveries (updated_at)
        where reported_state is distinct from state`.execute(db);
      await sql`
        create table webhook_attempts (
          run_id uuid not null references webhook_deliveries (run_id) on delete cascade,
          attempt integer not null,
          started_at timestamptz not null,
          duration_ms integer not null,
          status_code integer not null,
          error text,
          response_excerpt text,
          primary key (run_id, attempt)
        )`.execute(db);
    },
    async down(db) {
      await sql`drop table webhook_attempts`.execute(db);
      await sql`drop table webhook_deliveries`.execute(db);
      await sql`drop table webhook_secrets`.execute(db);
    },
  },
  // Retention that deletes: settled deliveries go LONGHAUL_RUN_RETENTION_DAYS
  // after their last change, as the scheduler deletes their runs. The
  // partial index holds settled deliveries only, so the due poller's
  // pending rows cost it nothing.
  "0013_delivery_retention": {
    async up(db) {
      await sql`create index webhook_deliveries_settled on webhook_deliveries (updated_at) where state <> 'pending'`.execute(db);
    },
    async down(db) {
      await sql`drop index webhook_deliveries_settled`.execute(db);
    },
  },
};

/** The notifier's migrations and the table that records them. */
export const notifierMigrationSet: MigrationSet = { migrations: notifierMigrations, tableName: "notifier_migrations" };
