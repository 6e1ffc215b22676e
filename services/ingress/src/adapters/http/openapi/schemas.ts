import { RUN_STATUSES, WEBHOOK_STATES } from "@longhaul/shared/domain";

/**
 * The JSON Schemas (draft 2020-12, as OpenAPI 3.1 uses) of the HTTP API's
 * bodies, kept beside the mappers that produce them (json-mapping.ts,
 * preview-json.ts). Objects Longhaul answers with are closed
 * (`additionalProperties: false`): a field added to a mapper and not here
 * fails the end-to-end tests, which check every answer against this document.
 */

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const nullable = (type: string, extra: Schema = {}): Schema => ({ type: [type, "null"], ...extra });
const dateTime: Schema = { type: "string", format: "date-time" };
const nullableDateTime: Schema = nullable("string", { format: "date-time" });
const int: Schema = { type: "integer" };

/** A closed object whose every property is required (the API sends absent values as `null`). */
function closed(properties: Record<string, Schema>, description?: string): Schema {
  return {
    type: "object",
    ...(description ? { description } : {}),
    properties,
    required: Object.keys(properties),
    additionalProperties: false,
  };
}

const header = closed({ name: { type: "string" }, value: { type: "string" } });

const attempt = closed({
  attempt: int,
  invoker_id: nullable("string"),
  started_at: nullableDateTime,
  finished_at: nullableDateTime,
  status_code: nullable("integer"),
  error_code: nullable("string"),
  error_message: nullable("string"),
});

const run = closed(
  {
    run_id: { type: "string", format: "uuid" },
    project: { type: "string" },
    app: { type: "string" },
    status: ref("RunStatus"),
    mode: { type: "string", enum: ["async", "sync"] },
    method: { type: "string" },
    path: { type: "string" },
    attempt: int,
    max_attempts: int,
    priority: int,
    timeout_seconds: int,
    webhook_url: nullable("string"),
    webhook_state: ref("WebhookState"),
    status_code: nullable("integer", { description: "The app's HTTP status, once it answered." }),
    error_code: nullable("string", {
      description:
        "app_error, connect_error, interrupted, timeout, cancelled_by_user, queue_ttl_exceeded, response_too_large",
    }),
    error_message: nullable("string"),
    retry_of: nullable("string", { format: "uuid" }),
    idempotency_key: nullable("string"),
    created_at: dateTime,
    not_before: nullableDateTime,
    expires_at: { ...nullableDateTime, description: "The run's own start deadline (`X-Longhaul-Queue-Ttl`, RunPod's `policy.ttl`): not started by then, it ends `expired`. Null without one (the app's `queue_ttl_seconds` may still apply)." },
    dispatched_at: nullableDateTime,
    started_at: nullableDateTime,
    finished_at: nullableDateTime,
    labels: { type: "object", additionalProperties: { type: "string" } },
    attempts: { type: "array", items: ref("Attempt") },
  },
  "A run: one async call (or a recorded sync call) of an app.",
);

const retry = {
  type: "object",
  properties: {
    max_attempts: int,
    initial_backoff_seconds: { type: "number" },
    max_backoff_seconds: { type: "number" },
    idempotent: { type: "boolean" },
  },
  additionalProperties: false,
};

const app = closed(
  {
    name: { type: "string" },
    url: { type: "string" },
    timeout_seconds: int,
    max_concurrency: { ...int, description: "0 = unlimited" },
    retry: { ...retry, required: ["max_attempts", "initial_backoff_seconds", "max_backoff_seconds", "idempotent"] },
    queue_ttl_seconds: { ...int, description: "0 = never expires" },
    in_flight: int,
    queued: int,
    paused: { type: "boolean", description: "Held by POST /v1/apps/{app}/pause: its queue does not start runs." },
    created_at: nullableDateTime,
    updated_at: nullableDateTime,
  },
  "An app: an upstream URL with its timeout, concurrency, retry policy and queue TTL.",
);

const appInput: Schema = {
  type: "object",
  description:
    "The body of PUT /v1/apps/{app}. Omitted fields take the scheduler's defaults; the read-only fields of a GET body are accepted and ignored.",
  properties: {
    url: { type: "string", minLength: 1 },
    timeout_seconds: { ...int, minimum: 0, maximum: 43200 },
    max_concurrency: int,
    retry,
    queue_ttl_seconds: int,
    name: { type: "string" },
    in_flight: {},
    queued: {},
    paused: {},
    created_at: {},
    updated_at: {},
  },
  required: ["url"],
  additionalProperties: false,
};

const bodyPreview = {
  body_size: nullable("integer"),
  body_encoding: { type: ["string", "null"], enum: ["utf8", "base64", null] },
  body: nullable("string"),
  body_preview_truncated: { type: "boolean" },
};

const delivery = closed({
  run_id: { type: "string", format: "uuid" },
  webhook_id: { type: "string" },
  url: { type: "string" },
  state: { type: "string" },
  attempts_made: int,
  next_attempt_at: nullableDateTime,
  attempts: {
    type: "array",
    items: closed({
      attempt: int,
      started_at: nullableDateTime,
      duration_ms: { type: "number" },
      status_code: nullable("integer"),
      error: nullable("string"),
      response_excerpt: nullable("string"),
    }),
  },
});

const statsBucket = closed({
  start: nullableDateTime,
  succeeded: int,
  failed: int,
  timed_out: int,
  cancelled: int,
  expired: int,
  queue_wait_p50_ms: nullable("number"),
  queue_wait_p95_ms: nullable("number"),
  run_p50_ms: nullable("number"),
  run_p95_ms: nullable("number"),
  webhook_delivered: int,
  webhook_failed: int,
});

/** `components.schemas` of the document. */
export const schemas: Record<string, Schema> = {
  Error: {
    type: "object",
    description: "Every error of the control API.",
    properties: {
      error: {
        type: "object",
        properties: {
          code: {
            type: "string",
            description:
              "invalid_argument (400), unauthenticated (401), permission_denied (403), not_found (404), conflict or already_exists (409), result_gone (410), payload_too_large (413), unprocessable (422), resource_exhausted (429), internal (500), unavailable (503), deadline_exceeded (504)",
          },
          message: { type: "string" },
          limit: { type: "string", description: "On a 429: the limit that was hit." },
        },
        required: ["code", "message"],
        additionalProperties: false,
      },
    },
    required: ["error"],
    additionalProperties: false,
  },
  RunStatus: { type: "string", enum: [...RUN_STATUSES] },
  WebhookState: { type: "string", enum: [...WEBHOOK_STATES] },
  RunAccepted: closed({ run_id: { type: "string", format: "uuid" } }, "The answer of an accepted async call: exactly the run id."),
  Attempt: attempt,
  Run: run,
  RunList: closed({ runs: { type: "array", items: ref("Run") }, next_cursor: nullable("string") }),
  Header: header,
  RetryRunsFilter: {
    type: "object",
    description: "Which finished runs to retry (each at most once).",
    properties: {
      app: { type: "string", minLength: 1 },
      status: { type: "string", enum: ["failed", "timed_out", "cancelled", "expired"] },
      error_code: { type: "string", minLength: 1 },
      created_after: dateTime,
      created_before: dateTime,
      limit: { ...int, minimum: 1, maximum: 1000 },
    },
    additionalProperties: false,
  },
  RetriedRuns: closed({
    retried: int,
    run_ids: { type: "array", items: { type: "string", format: "uuid" } },
    more: { type: "boolean", description: "More runs match: send the filter again." },
  }),
  RunResult: closed({
    run_id: { type: "string", format: "uuid" },
    status: ref("RunStatus"),
    status_code: nullable("integer"),
    content_type: nullable("string"),
    headers: { type: "array", items: ref("Header") },
    body_base64: { type: "string", contentEncoding: "base64" },
    body_truncated: { type: "boolean" },
    body_gone: { type: "boolean", description: "The app's body was stored and is no longer: dropped after the retention period, or erased. The body is then empty." },
  }),
  RunResultPreview: closed({
    run_id: { type: "string", format: "uuid" },
    status: ref("RunStatus"),
    status_code: nullable("integer"),
    content_type: nullable("string"),
    headers: { type: "array", items: ref("Header") },
    ...bodyPreview,
    body_truncated: { type: "boolean" },
    body_gone: { type: "boolean", description: "The app's body was stored and is no longer: dropped after the retention period, or erased. The body is then empty." },
  }),
  RunRequest: closed({
    run_id: { type: "string", format: "uuid" },
    method: { type: "string" },
    path: { type: "string" },
    query: { type: "string" },
    headers: { type: "array", items: ref("Header") },
    body_stored: { type: "boolean" },
    ...bodyPreview,
  }),
  App: app,
  AppInput: appInput,
  AppList: closed({ apps: { type: "array", items: ref("App") } }),
  AppOutcomes: closed({
    app: { type: "string" },
    since: dateTime,
    counts: { type: "object", additionalProperties: int },
    total: int,
    capped: { type: "boolean" },
  }),
  Delivery: delivery,
  WebhookSecret: closed({
    secret: { type: "string" },
    previous_secret: nullable("string"),
    previous_expires_at: nullableDateTime,
  }),
  Stats: closed({
    window: { type: "string", enum: ["1h", "24h", "7d"] },
    bucket_seconds: int,
    buckets: { type: "array", items: statsBucket },
    in_flight: int,
    queued: int,
  }),
  KeyProject: closed({ project: { type: "string" } }),
  Health: closed({ status: { type: "string" } }),
};
