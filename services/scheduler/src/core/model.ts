import { isFinished, MAX_RUN_TIMEOUT_SECONDS } from "@longhaul/shared/domain";

// The run's statuses, webhook states and error codes are the domain's (one list for every service).
export { RUN_STATUSES, type RunErrorCode, type RunStatus, type WebhookState } from "@longhaul/shared/domain";

/** True once a run can change no more. */
export const isTerminal = isFinished;

/** An app's settings: where it lives and how its runs are scheduled. */
export interface AppSettings {
  name: string;
  url: string;
  timeoutSeconds: number;
  /** 0 is unlimited. */
  maxConcurrency: number;
  maxAttempts: number;
  initialBackoffSeconds: number;
  maxBackoffSeconds: number;
  /** Any failure may be retried, not only those the app cannot have processed. */
  idempotent: boolean;
  /** 0 is never. */
  queueTtlSeconds: number;
  /** Held by PauseApp: runs are accepted and wait queued. Read from the store; never set by PutApp. */
  paused?: boolean;
}

/** What came of one attempt, as the invoker saw it. */
export interface AttemptOutcome {
  /** 0 when no HTTP response came back. */
  statusCode: number;
  /** Empty for an HTTP response; else connect_error, interrupted, timeout... */
  errorCode: string;
  errorMessage: string;
  retryAfterSeconds: number;
}

/** The maximum and default run timeout: 12 hours (DESIGN.md). */
export const MAX_TIMEOUT_SECONDS = MAX_RUN_TIMEOUT_SECONDS;

export interface HeaderPair {
  name: string;
  value: string;
}

/** A run as stored: the scheduler's record of it. */
export interface RunRecord {
  id: string;
  project_id: string;
  app: string;
  mode: "async" | "sync";
  status: string;
  method: string;
  path: string;
  query: string;
  upstream_url: string;
  request_headers: HeaderPair[];
  request_body: Buffer | null;
  webhook_url: string | null;
  webhook_state: string;
  priority: number;
  timeout_seconds: number;
  max_attempts: number;
  attempt: number;
  idempotency_key: string | null;
  retry_of: string | null;
  not_before: Date | null;
  /** The run's own start deadline (its queue_ttl_seconds from submit); null: only the app's queue TTL. */
  expires_at: Date | null;
  created_at: Date;
  dispatched_at: Date | null;
  started_at: Date | null;
  finished_at: Date | null;
  owner: string | null;
  lease_expires_at: Date | null;
  status_code: number | null;
  response_headers: HeaderPair[] | null;
  response_body: Buffer | null;
  response_truncated: boolean;
  error_code: string | null;
  error_message: string | null;
  traceparent: string;
  tracestate: string;
  /** Labels the client set at submit ({} when none). */
  labels: Record<string, string>;
}

/**
 * A run as the end of an attempt publishes it (the change notice, run.finished
 * and its webhook delivery) and answers with: the run without its request
 * and its times. A success's end reads back no more than this: the request
 * body and headers are a run's largest columns, and nobody reads them after.
 */
export type EndedRun = Pick<
  RunRecord,
  | "id"
  | "project_id"
  | "app"
  | "status"
  | "attempt"
  | "webhook_url"
  | "status_code"
  | "response_headers"
  | "response_body"
  | "response_truncated"
  | "error_code"
  | "error_message"
  | "labels"
  | "traceparent"
  | "tracestate"
>;

/** One attempt of a run. */
export interface AttemptRecord {
  run_id: string;
  attempt: number;
  invoker_id: string;
  started_at: Date;
  finished_at: Date | null;
  status_code: number | null;
  error_code: string | null;
  error_message: string | null;
}

/** A run attempt to hand to an invoker. */
export interface DispatchRef {
  runId: string;
  attempt: number;
  project: string;
  app: string;
  traceparent: string;
}

/** An attempt an invoker owns, as it names it. */
export interface AttemptRef {
  runId: string;
  attempt: number;
}

/** What an invoker needs to make the call of an attempt it owns (claimed, or started for it at submit). */
export interface StartedRun {
  runId: string;
  attempt: number;
  project: string;
  app: string;
  upstreamUrl: string;
  method: string;
  path: string;
  query: string;
  headers: HeaderPair[];
  body: Buffer;
  timeoutSeconds: number;
  traceparent: string;
  tracestate: string;
}

/** A claimed run as the invoker's call needs it. */
export function startedRun(run: RunRecord): StartedRun {
  return {
    runId: run.id,
    attempt: run.attempt,
    project: run.project_id,
    app: run.app,
    upstreamUrl: run.upstream_url,
    method: run.method,
    path: run.path,
    query: run.query,
    headers: run.request_headers,
    body: run.request_body ?? Buffer.alloc(0),
    timeoutSeconds: run.timeout_seconds,
    traceparent: run.traceparent,
    tracestate: run.tracestate,
  };
}
