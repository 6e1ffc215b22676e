import type { Kysely, Transaction } from "kysely";
import type { SchedulerDb } from "./schema.js";

/** A database or a transaction: repositories take either. */
export type Db = Kysely<SchedulerDb> | Transaction<SchedulerDb>;

/** The columns of a run as the core sees it (RunRecord). */
export const runColumns = [
  "id", "project_id", "app", "mode", "status", "method", "path", "query", "upstream_url",
  "request_headers", "request_body", "webhook_url", "webhook_state", "priority", "timeout_seconds",
  "max_attempts", "attempt", "idempotency_key", "retry_of", "not_before", "created_at", "dispatched_at",
  "started_at", "finished_at", "owner", "lease_expires_at", "status_code", "response_headers",
  "response_body", "response_truncated", "error_code", "error_message", "traceparent", "tracestate", "labels",
  "expires_at",
] as const;

