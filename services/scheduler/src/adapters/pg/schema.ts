import type { HeaderPair } from "../../core/model.js";
import type { ColumnType, Generated, Insertable, Selectable } from "kysely";

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null, Date | string | null>;

export interface ProjectsTable {
  id: string;
  created_at: GeneratedTimestamp;
  deleted_at: NullableTimestamp;
  submits_per_second: Generated<number>;
  burst: Generated<number>;
  max_in_flight: Generated<number>;
  max_queued: Generated<number>;
  max_watch_streams: Generated<number>;
  /** Tokens left in the submit bucket at `bucket_at`; null: full. */
  bucket_tokens: number | null;
  bucket_at: NullableTimestamp;
}

export interface ApiKeysTable {
  key_hash: string;
  project_id: string;
  created_at: GeneratedTimestamp;
  id: Generated<string>;
  name: Generated<string>;
  scopes: ColumnType<string[], string[] | undefined, string[]>;
  prefix: Generated<string>;
  last_used_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
}

export interface ProjectUsageTable {
  project_id: string;
  day: ColumnType<Date, string, string>;
  throttled: ColumnType<string, number | undefined, number>;
}

export interface AdminAuditTable {
  id: ColumnType<string, never, never>;
  at: GeneratedTimestamp;
  actor: string;
  action: string;
  project_id: string | null;
  target: string | null;
  detail: ColumnType<Record<string, unknown>, string | undefined, string>;
}

export interface WatchStreamsTable {
  id: string;
  project_id: string;
  expires_at: Timestamp;
}

export interface AppsTable {
  project_id: string;
  name: string;
  url: string;
  timeout_seconds: number;
  max_concurrency: number;
  max_attempts: number;
  initial_backoff_seconds: number;
  max_backoff_seconds: number;
  idempotent: boolean;
  queue_ttl_seconds: number;
  /** Held by PauseApp (migration 0011): runs wait queued. */
  paused: Generated<boolean>;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

/** Headers are stored as JSON arrays of name/value pairs. */
export type StoredHeader = HeaderPair;

export interface RunsTable {
  id: string;
  project_id: string;
  app: string;
  mode: "async" | "sync";
  status: string;
  method: string;
  path: string;
  query: Generated<string>;
  upstream_url: string;
  request_headers: ColumnType<StoredHeader[], string, string>;
  request_body: Buffer | null;
  webhook_url: string | null;
  webhook_state: Generated<string>;
  webhook_taken_at: NullableTimestamp;
  webhook_published_at: NullableTimestamp;
  priority: Generated<number>;
  timeout_seconds: number;
  max_attempts: number;
  attempt: Generated<number>;
  idempotency_key: string | null;
  retry_of: string | null;
  not_before: NullableTimestamp;
  /** The run's own start deadline (migration 0018): not started by then, it never starts. */
  expires_at: NullableTimestamp;
  created_at: GeneratedTimestamp;
  dispatched_at: NullableTimestamp;
  started_at: NullableTimestamp;
  finished_at: NullableTimestamp;
  owner: string | null;
  lease_expires_at: NullableTimestamp;
  status_code: number | null;
  response_headers: ColumnType<StoredHeader[] | null, string | null, string | null>;
  response_body: Buffer | null;
  response_truncated: Generated<boolean>;
  error_code: string | null;
  error_message: string | null;
  traceparent: Generated<string>;
  tracestate: Generated<string>;
  labels: ColumnType<Record<string, string>, string | undefined, string>;
  /** When the webhook reached `delivered` or `failed` (the overview counts webhooks by it). */
  webhook_settled_at: NullableTimestamp;
}

export interface RunAttemptsTable {
  run_id: string;
  attempt: number;
  invoker_id: string;
  started_at: GeneratedTimestamp;
  finished_at: NullableTimestamp;
  /** The Handoff stream the attempt was started on; null when it was claimed. */
  handoff_stream: Generated<string | null>;
  status_code: number | null;
  error_code: string | null;
  error_message: string | null;
}

export interface IdempotencyKeysTable {
  project_id: string;
  key: string;
  run_id: string;
  request_hash: string;
  expires_at: Timestamp;
}

/** One rollup row: a project's runs of one app and mode ('*': all) that ended in one bucket (migration 0003). */
export interface RunStatsTable {
  project_id: string;
  bucket_seconds: number;
  bucket_start: Timestamp;
  app: string;
  mode: string;
  succeeded: number;
  failed: number;
  timed_out: number;
  cancelled: number;
  expired: number;
  webhook_delivered: number;
  webhook_failed: number;
  /** A sparse histogram: the bins used (STATS_BIN_GROWTH in run-stats.ts) and their counts, in bin order. */
  queue_wait_bins: number[];
  queue_wait_counts: number[];
  run_bins: number[];
  run_counts: number[];
  /** The percentiles of those histograms (null: empty), so a complete bucket is read as it is. */
  queue_wait_p50_ms: number | null;
  queue_wait_p95_ms: number | null;
  run_p50_ms: number | null;
  run_p95_ms: number | null;
}

/** One row per invoker: the lease its heartbeats renew (migration 0007). */
export interface InvokerSessionsTable {
  invoker_id: string;
  lease_expires_at: Timestamp;
  started_at: GeneratedTimestamp;
}

export interface RunStatsProgressTable {
  id: number;
  rolled_until: Timestamp;
}

/** How far the body retention pass has gone (migration 0013): one row. */
export interface RunRetentionTable {
  id: number;
  bodies_until: Timestamp;
}

/** The scheduler's view of the database. */
export interface SchedulerDb {
  projects: ProjectsTable;
  api_keys: ApiKeysTable;
  apps: AppsTable;
  runs: RunsTable;
  run_attempts: RunAttemptsTable;
  idempotency_keys: IdempotencyKeysTable;
  run_stats: RunStatsTable;
  run_stats_progress: RunStatsProgressTable;
  project_usage: ProjectUsageTable;
  watch_streams: WatchStreamsTable;
  invoker_sessions: InvokerSessionsTable;
  admin_audit: AdminAuditTable;
  run_retention: RunRetentionTable;
}

export type RunRow = Selectable<RunsTable>;
export type NewRun = Insertable<RunsTable>;
export type AppRow = Selectable<AppsTable>;
export type AttemptRow = Selectable<RunAttemptsTable>;
