import { sql, type Kysely } from "kysely";
import type { Migration } from "kysely/migration";
import type { MigrationSet } from "@longhaul/shared/db";

/**
 * The scheduler's schema. Migrations are append-only: a change is a new entry.
 * Runs keep the app's name (not a foreign key) so that deleting an app keeps
 * its history.
 */
export const schedulerMigrations: Record<string, Migration> = {
  "0001_runs": {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("projects")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema
        .createTable("api_keys")
        .addColumn("key_hash", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull().references("projects.id").onDelete("cascade"))
        .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema
        .createTable("apps")
        .addColumn("project_id", "text", (c) => c.notNull().references("projects.id").onDelete("cascade"))
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("url", "text", (c) => c.notNull())
        .addColumn("timeout_seconds", "integer", (c) => c.notNull())
        .addColumn("max_concurrency", "integer", (c) => c.notNull())
        .addColumn("max_attempts", "integer", (c) => c.notNull())
        .addColumn("initial_backoff_seconds", "double precision", (c) => c.notNull())
        .addColumn("max_backoff_seconds", "double precision", (c) => c.notNull())
        .addColumn("idempotent", "boolean", (c) => c.notNull())
        .addColumn("queue_ttl_seconds", "integer", (c) => c.notNull())
        .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
        .addPrimaryKeyConstraint("apps_pk", ["project_id", "name"])
        .execute();
      await db.schema
        .createTable("runs")
        .addColumn("id", "uuid", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull())
        .addColumn("app", "text", (c) => c.notNull())
        .addColumn("mode", "text", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("method", "text", (c) => c.notNull())
        .addColumn("path", "text", (c) => c.notNull())
        .addColumn("query", "text", (c) => c.notNull().defaultTo(""))
        // The app's URL at submit, so that a run calls where it was sent.
        .addColumn("upstream_url", "text", (c) => c.notNull())
        .addColumn("request_headers", "jsonb", (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
        .addColumn("request_body", "bytea")
        .addColumn("webhook_url", "text")
        .addColumn("webhook_state", "text", (c) => c.notNull().defaultTo("none"))
        .addColumn("webhook_taken_at", "timestamptz")
        .addColumn("webhook_published_at", "timestamptz")
        .addColumn("priority", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("timeout_seconds", "integer", (c) => c.notNull())
        .addColumn("max_attempts", "integer", (c) => c.notNull())
        .addColumn("attempt", "integer", (c) => c.notNull().defaultTo(1))
        .addColumn("idempotency_key", "text")
        .addColumn("retry_of", "uuid")
        .addColumn("not_before", "timestamptz")
        .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn("dispatched_at", "timestamptz")
        .addColumn("started_at", "timestamptz")
        .addColumn("finished_at", "timestamptz")
        .addColumn("owner", "text")
        .addColumn("lease_expires_at", "timestamptz")
        .addColumn("status_code", "integer")
        .addColumn("response_headers", "jsonb")
        .addColumn("response_body", "bytea")
        .addColumn("response_truncated", "boolean", (c) => c.notNull().defaultTo(false))
        .addColumn("error_code", "text")
        .addColumn("error_message", "text")
        .addColumn("traceparent", "text", (c) => c.notNull().defaultTo(""))
        .addColumn("tracestate", "text", (c) => c.notNull().defaultTo(""))
        .execute();
      // Listing: newest first per project, keyset on (created_at, id).
      await sql`create index runs_project_created on runs (project_id, created_at desc, id desc)`.execute(db);
      await sql`create index runs_project_app_created on runs (project_id, app, created_at desc, id desc)`.execute(db);
      // The queue of an app: highest priority first, FIFO within a priority.
      await sql`create index runs_queue on runs (project_id, app, priority desc, created_at, id) where status = 'queued'`.execute(
        db,
      );
      // In-flight counting for concurrency limits.
      await sql`create index runs_in_flight on runs (project_id, app) where status in ('dispatched', 'running')`.execute(db);
      await sql`create index runs_leases on runs (lease_expires_at) where status = 'running'`.execute(db);
      await sql`create index runs_dispatched on runs (dispatched_at) where status = 'dispatched'`.execute(db);
      await sql`create index runs_webhook_pending on runs (finished_at) where webhook_state = 'pending' and webhook_taken_at is null`.execute(
        db,
      );
      await db.schema
        .createTable("run_attempts")
        .addColumn("run_id", "uuid", (c) => c.notNull().references("runs.id").onDelete("cascade"))
        .addColumn("attempt", "integer", (c) => c.notNull())
        .addColumn("invoker_id", "text", (c) => c.notNull())
        .addColumn("started_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn("finished_at", "timestamptz")
        .addColumn("status_code", "integer")
        .addColumn("error_code", "text")
        .addColumn("error_message", "text")
        .addPrimaryKeyConstraint("run_attempts_pk", ["run_id", "attempt"])
        .execute();
      await db.schema
        .createTable("idempotency_keys")
        .addColumn("project_id", "text", (c) => c.notNull())
        .addColumn("key", "text", (c) => c.notNull())
        .addColumn("run_id", "uuid", (c) => c.notNull())
        .addColumn("request_hash", "text", (c) => c.notNull())
        .addColumn("expires_at", "timestamptz", (c) => c.notNull())
        .addPrimaryKeyConstraint("idempotency_keys_pk", ["project_id", "key"])
        .execute();
    },
  },
  // Labels a client sets at submit. The constant default makes the column
  // instant to add on a large table; the GIN index holds only labelled runs,
  // so runs without labels cost it nothing.
  "0002_run_labels": {
    async up(db: Kysely<unknown>) {
      await sql`alter table runs add column labels jsonb not null default '{}'::jsonb`.execute(db);
      await sql`create index runs_labels on runs using gin (labels jsonb_path_ops) where labels <> '{}'::jsonb`.execute(db);
    },
  },
  // Figures of the dashboard's overview (GET /v1/stats). A rollup job folds
  // finished runs into per-minute, per-15-minute and per-2-hour rows
  // (adapters/pg/run-stats.ts); nothing is written per run beyond the time a
  // webhook settled, set by the update that records it. `app` and `mode` are
  // '*' in the rows that sum every app or both modes. The two partial
  // indexes hold finished runs only: a run costs them one entry when it ends
  // (and one when its webhook settles), none while it waits or runs.
  "0004_run_stats": {
    async up(db: Kysely<unknown>) {
      await sql`alter table runs add column webhook_settled_at timestamptz`.execute(db);
      // The same index as run retention's (named alike, so that either migration makes it once).
      await sql`create index if not exists runs_finished_at on runs (finished_at) where finished_at is not null`.execute(db);
      await sql`create index runs_webhook_settled on runs (webhook_settled_at) where webhook_settled_at is not null`.execute(db);
      await sql`
        create table run_stats (
          project_id text not null,
          bucket_seconds integer not null,
          bucket_start timestamptz not null,
          app text not null,
          mode text not null,
          succeeded integer not null,
          failed integer not null,
          timed_out integer not null,
          cancelled integer not null,
          expired integer not null,
          webhook_delivered integer not null,
          webhook_failed integer not null,
          queue_wait_bins integer[] not null,
          queue_wait_counts integer[] not null,
          run_bins integer[] not null,
          run_counts integer[] not null,
          queue_wait_p50_ms double precision,
          queue_wait_p95_ms double precision,
          run_p50_ms double precision,
          run_p95_ms double precision,
          primary key (project_id, bucket_seconds, bucket_start, app, mode)
        )`.execute(db);
      // One row: how far the rollup has gone (every bucket ending by then is folded).
      await sql`create table run_stats_progress (id integer primary key check (id = 1), rolled_until timestamptz not null)`.execute(db);
    },
  },
  // Projects, keys and limits (DESIGN.md "Projects, keys and limits").
  // Expand only: every new column has a default, so the previous release
  // keeps running. Keys made from the environment get every scope. The
  // token bucket of submits lives on the project's row (null tokens: full),
  // so every copy of the scheduler draws from one bucket.
  "0006_tenancy": {
    async up(db: Kysely<unknown>) {
      await sql`
        alter table projects
          add column deleted_at timestamptz,
          add column submits_per_second double precision not null default 0,
          add column burst integer not null default 0,
          add column max_in_flight integer not null default 0,
          add column max_queued integer not null default 0,
          add column max_watch_streams integer not null default 0,
          add column bucket_tokens double precision,
          add column bucket_at timestamptz`.execute(db);
      await sql`
        alter table api_keys
          add column id uuid not null default gen_random_uuid(),
          add column name text not null default 'env',
          add column scopes text[] not null default '{read,invoke,admin}',
          add column prefix text not null default '',
          add column last_used_at timestamptz,
          add column revoked_at timestamptz`.execute(db);
      await sql`create unique index api_keys_id on api_keys (id)`.execute(db);
      await sql`create index api_keys_project on api_keys (project_id, created_at)`.execute(db);
      // Refusals over a limit, per project and UTC day (the operator's "429s today").
      await sql`
        create table project_usage (
          project_id text not null,
          day date not null,
          throttled bigint not null default 0,
          primary key (project_id, day)
        )`.execute(db);
      // Watch streams open now, for max_watch_streams across every copy: a
      // row per stream, kept alive while it is open, so a crashed copy's rows expire.
      await sql`
        create table watch_streams (
          id uuid primary key,
          project_id text not null,
          expires_at timestamptz not null
        )`.execute(db);
      await sql`create index watch_streams_project on watch_streams (project_id, expires_at)`.execute(db);
    },
  },
  // Leases per invoker, not per call (docs/ARCHITECTURE.md "Leases"): an
  // invoker's heartbeat renews its one row here. A claim still stamps the
  // run's own lease_expires_at (it covers the call until the invoker's first
  // heartbeat after the claim); a running run is lost only when both its own
  // lease and its owner's session lease have run out. The partial index
  // finds an expired invoker's runs without reading any other running run.
  "0007_invoker_sessions": {
    async up(db: Kysely<unknown>) {
      await sql`
        create table invoker_sessions (
          invoker_id text primary key,
          lease_expires_at timestamptz not null,
          started_at timestamptz not null default now()
        )`.execute(db);
      await sql`create index runs_running_owner on runs (owner) where status = 'running'`.execute(db);
    },
  },
  // Bulk recovery (POST /v1/runs/retry, /v1/apps/{app}/pause|resume). A paused
  // app's runs wait queued. The partial index answers "was this run retried
  // already?" from the retries only, so a second bulk retry skips them.
  "0011_bulk_recovery": {
    async up(db: Kysely<unknown>) {
      await sql`alter table apps add column paused boolean not null default false`.execute(db);
      await sql`create index runs_retry_of on runs (retry_of) where retry_of is not null`.execute(db);
    },
  },
  // The audit log of admin actions (who, what, when), written in the
  // transaction of the change it records; read newest first, per project or all.
  "0012_admin_audit": {
    async up(db: Kysely<unknown>) {
      await sql`
        create table admin_audit (
          id bigserial primary key,
          at timestamptz not null default now(),
          actor text not null,
          action text not null,
          project_id text,
          target text,
          detail jsonb not null default '{}'::jsonb
        )`.execute(db);
      await sql`create index admin_audit_project on admin_audit (project_id, id desc)`.execute(db);
    },
  },
  // Retention that deletes (adapters/pg/retention.ts). Bodies go after
  // LONGHAUL_RETENTION_DAYS; the one-row table says how far that pass has
  // gone (finished_at), so its probe is an index-only look at the runs
  // finished since, on runs_finished_at, and never re-reads the runs whose
  // bodies are already gone. Whole rows go after LONGHAUL_RUN_RETENTION_DAYS
  // through the same index. '-infinity': the first pass walks every finished run once.
  "0013_run_retention": {
    async up(db: Kysely<unknown>) {
      await sql`create index if not exists runs_finished_at on runs (finished_at) where finished_at is not null`.execute(db);
      await sql`
        create table run_retention (
          id integer primary key check (id = 1),
          bodies_until timestamptz not null
        )`.execute(db);
      await sql`insert into run_retention (id, bodies_until) values (1, '-infinity')`.execute(db);
    },
  },
  // The reconciler sleeps until the first delayed run (or retry) is due
  // instead of polling for it (maintenance-store.ts dueWork, next_due_at):
  // the earliest not_before among waiting runs, read from this index alone.
  "0017_runs_not_before": {
    async up(db: Kysely<unknown>) {
      await sql`create index if not exists runs_not_before on runs (not_before) where status = 'queued' and not_before is not null`.execute(db);
    },
  },
  // A run's own start deadline (SubmitRunRequest.queue_ttl_seconds, RunPod's
  // policy.ttl): a run not claimed by then never starts; the claim refuses it
  // and the reconciler ends it `expired`. On a live table: the column is
  // nullable without a default (a catalog change, no rewrite), and the lock
  // it needs is waited for at most 5 s (else the migration fails and is run
  // again) rather than queueing every query on runs behind a long one. The
  // partial index holds only waiting runs that have a deadline: the
  // reconciler's probe and its sleep until the earliest deadline read it alone.
  // `set local` lasts to the end of the transaction, and Kysely's Migrator runs
  // a whole batch in one: the timeout the batch had is put back at the end, so
  // the migrations after this one do not inherit the 5 s.
  "0018_runs_expires_at": {
    async up(db: Kysely<unknown>) {
      const { rows } = await sql<{ value: string }>`select current_setting('lock_timeout') as value`.execute(db);
      await sql`set local lock_timeout = '5s'`.execute(db);
      await sql`alter table runs add column if not exists expires_at timestamptz`.execute(db);
      await sql`create index if not exists runs_expires_at on runs (expires_at) where status in ('queued', 'dispatched') and expires_at is not null`.execute(db);
      await sql`select set_config('lock_timeout', ${rows[0]!.value}, true)`.execute(db);
    },
  },
  // The Handoff stream an attempt was started on (null: claimed). An invoker
  // names the streams it saw end, and only their attempts it does not hold are
  // handed back: never a claimed attempt, whose answer may be on its way.
  // A nullable column without a default: no table rewrite.
  "0019_run_attempts_handoff_stream": {
    async up(db: Kysely<unknown>) {
      await sql`alter table run_attempts add column if not exists handoff_stream uuid`.execute(db);
    },
  },
};

/** The scheduler's migrations and the table that records them. */
export const schedulerMigrationSet: MigrationSet = { migrations: schedulerMigrations, tableName: "scheduler_migrations" };
