/** The JSON of the HTTP API (docs/HTTP-API.md) as the dashboard reads it. */

export type RunStatus =
  | "queued"
  | "dispatched"
  | "running"
  | "succeeded"
  | "failed"
  | "timed_out"
  | "cancelled"
  | "expired"
  | "unknown";

export type WebhookState = "none" | "pending" | "delivered" | "failed";

export interface RunAttempt {
  attempt: number;
  invoker_id: string | null;
  started_at: string | null;
  finished_at: string | null;
  status_code: number | null;
  error_code: string | null;
  error_message: string | null;
}

export interface Run {
  run_id: string;
  project: string;
  app: string;
  status: RunStatus;
  mode: "async" | "sync";
  method: string;
  path: string;
  attempt: number;
  max_attempts: number;
  priority: number;
  timeout_seconds: number;
  webhook_url: string | null;
  webhook_state: WebhookState;
  status_code: number | null;
  error_code: string | null;
  error_message: string | null;
  retry_of: string | null;
  idempotency_key: string | null;
  created_at: string;
  not_before: string | null;
  expires_at: string | null;
  dispatched_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  /** Labels the client set at submit; absent from an older ingress. */
  labels?: Record<string, string>;
  attempts: RunAttempt[];
}

export interface RunPage {
  runs: Run[];
  next_cursor: string | null;
}

export interface App {
  name: string;
  url: string;
  timeout_seconds: number;
  max_concurrency: number;
  retry: { max_attempts: number; initial_backoff_seconds: number; max_backoff_seconds: number; idempotent: boolean };
  queue_ttl_seconds: number;
  in_flight: number;
  queued: number;
  created_at: string | null;
  updated_at: string | null;
}

export interface Outcomes {
  app: string;
  since: string;
  counts: Partial<Record<RunStatus, number>>;
  total: number;
  capped: boolean;
}

export interface Header {
  name: string;
  value: string;
}

/** A capped body: text when UTF-8, else base64. */
export interface BodyPreview {
  body_size: number | null;
  body_encoding: "utf8" | "base64" | null;
  body: string | null;
  body_preview_truncated: boolean;
}

export interface RunRequest extends BodyPreview {
  run_id: string;
  method: string;
  path: string;
  query: string;
  headers: Header[];
  body_stored: boolean;
}

export interface RunResponse extends BodyPreview {
  run_id: string;
  status: RunStatus;
  status_code: number | null;
  content_type: string | null;
  headers: Header[];
  body_truncated: boolean;
  /** The stored body was dropped after the retention period, or erased. */
  body_gone: boolean;
}

export interface DeliveryAttempt {
  attempt: number;
  started_at: string | null;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_excerpt: string | null;
}

export interface Delivery {
  run_id: string;
  webhook_id: string;
  url: string;
  state: "pending" | "delivered" | "failed";
  attempts_made: number;
  next_attempt_at: string | null;
  attempts: DeliveryAttempt[];
}

/** One bucket of `GET /v1/stats`. */
export interface StatsBucket {
  start: string;
  succeeded: number;
  failed: number;
  timed_out: number;
  cancelled: number;
  expired: number;
  queue_wait_p50_ms: number | null;
  queue_wait_p95_ms: number | null;
  run_p50_ms: number | null;
  run_p95_ms: number | null;
  webhook_delivered: number;
  webhook_failed: number;
}

/** `GET /v1/stats?window=1h|24h|7d[&app=][&mode=]`. */
export interface Stats {
  window: "1h" | "24h" | "7d";
  bucket_seconds: number;
  buckets: StatsBucket[];
  in_flight: number;
  queued: number;
}

/** A project's limits (admin API); 0 is unlimited. */
export interface ProjectLimits {
  submits_per_second: number;
  burst: number;
  max_in_flight: number;
  max_queued: number;
  max_watch_streams: number;
}

/** `GET /v1/admin/projects/{name}`. */
export interface Project {
  name: string;
  created_at: string | null;
  limits: ProjectLimits;
  usage: { runs_today: number; in_flight: number; queued: number; throttled_today: number };
}

/** A key as listings show it (never its secret). */
export interface AdminKey {
  id: string;
  project: string;
  name: string;
  scopes: string[];
  prefix: string;
  created_at: string | null;
  last_used_at: string | null;
}

/** A key just made: `key` is its secret, in this answer only. */
export interface CreatedKey extends AdminKey {
  key: string;
}

/** One entry of `GET /v1/admin/audit`. */
export interface AuditEntry {
  id: string;
  at: string | null;
  actor: string;
  action: string;
  project: string | null;
  target: string | null;
  detail: Record<string, unknown>;
}
