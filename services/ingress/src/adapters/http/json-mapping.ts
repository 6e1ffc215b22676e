import { LonghaulError } from "@longhaul/shared/errors";
import { RUN_STATUSES, parseLabelFilter } from "@longhaul/shared/domain";
import { z } from "@longhaul/shared/config";
import { appsPb, runStatusFromProto, runStatusToProto, runsPb, webhookStateFromProto, type notifierPb } from "@longhaul/shared/proto";
import { checkQueryParams, dateParam } from "./query-params.js";

/**
 * The one place where the HTTP API's JSON meets the protos. JSON names are
 * snake_case like the 202 body's `run_id`; enums are lowercase words; times
 * are ISO 8601 strings; absent values are `null`, never `""` or `0`.
 */

/** Lowercase name of a run status (`queued`, `succeeded`, ...). */
export function runStatusName(status: runsPb.RunStatus): string {
  return runStatusFromProto(status) ?? "unknown";
}

/** True once a run can change no more. */
export function isFinished(status: runsPb.RunStatus): boolean {
  return status >= runsPb.RunStatus.RUN_STATUS_SUCCEEDED && status <= runsPb.RunStatus.RUN_STATUS_EXPIRED;
}

/** The status a lowercase name stands for; a 400 for an unknown one. */
export function parseRunStatus(name: string): runsPb.RunStatus {
  const status = runStatusToProto(name);
  if (status === runsPb.RunStatus.RUN_STATUS_UNSPECIFIED) {
    throw new LonghaulError("invalid_argument", `status must be one of ${RUN_STATUSES.join(", ")}`);
  }
  return status;
}

const iso = (d: Date | undefined): string | null => (d ? d.toISOString() : null);
const orNull = (s: string): string | null => (s === "" ? null : s);
const codeOrNull = (n: number): number | null => (n === 0 ? null : n);

/** A run as the API shows it. */
export function runToJson(run: runsPb.Run) {
  return {
    run_id: run.id,
    project: run.project,
    app: run.app,
    status: runStatusName(run.status),
    mode: run.mode || "async",
    method: run.method,
    path: run.path,
    attempt: run.attempt,
    max_attempts: run.maxAttempts,
    priority: run.priority,
    timeout_seconds: run.timeoutSeconds,
    webhook_url: orNull(run.webhookUrl),
    webhook_state: webhookStateFromProto(run.webhookState) ?? "none",
    status_code: codeOrNull(run.statusCode),
    error_code: orNull(run.errorCode),
    error_message: orNull(run.errorMessage),
    retry_of: orNull(run.retryOf),
    idempotency_key: orNull(run.idempotencyKey),
    created_at: iso(run.createdAt),
    not_before: iso(run.notBefore),
    expires_at: iso(run.expiresAt),
    dispatched_at: iso(run.dispatchedAt),
    started_at: iso(run.startedAt),
    finished_at: iso(run.finishedAt),
    labels: { ...run.labels },
    attempts: run.attempts.map((a) => ({
      attempt: a.attempt,
      invoker_id: orNull(a.invokerId),
      started_at: iso(a.startedAt),
      finished_at: iso(a.finishedAt),
      status_code: codeOrNull(a.statusCode),
      error_code: orNull(a.errorCode),
      error_message: orNull(a.errorMessage),
    })),
  };
}

/** A page of runs. */
export function runListToJson(res: runsPb.ListRunsResponse) {
  return { runs: res.runs.map(runToJson), next_cursor: orNull(res.nextCursor) };
}

/** The stored result as a JSON envelope (`?format=json`); the body is base64. */
export function resultToJson(res: runsPb.GetRunResultResponse) {
  return {
    run_id: res.runId,
    status: runStatusName(res.status),
    status_code: codeOrNull(res.statusCode),
    content_type: orNull(res.contentType),
    headers: res.headers.map((h) => ({ name: h.name, value: h.value })),
    body_base64: Buffer.from(res.body).toString("base64"),
    body_truncated: res.bodyTruncated,
    body_gone: res.bodyGone,
  };
}

/** An app as the API shows it. */
export function appToJson(app: appsPb.App) {
  return {
    name: app.name,
    url: app.url,
    timeout_seconds: app.timeoutSeconds,
    max_concurrency: app.maxConcurrency,
    retry: {
      max_attempts: app.retry?.maxAttempts ?? 1,
      initial_backoff_seconds: app.retry?.initialBackoffSeconds ?? 0,
      max_backoff_seconds: app.retry?.maxBackoffSeconds ?? 0,
      idempotent: app.retry?.idempotent ?? false,
    },
    queue_ttl_seconds: app.queueTtlSeconds,
    in_flight: app.inFlight,
    queued: app.queued,
    paused: app.paused,
    created_at: iso(app.createdAt),
    updated_at: iso(app.updatedAt),
  };
}

const int = z.number().int();

/**
 * The body of `PUT /v1/apps/{app}`. Read-only fields a GET returns are
 * accepted and ignored, so a GET body can be edited and PUT back; any other
 * unknown field is a 400 (a typo should not be silently dropped). Ranges are
 * the scheduler's to check.
 */
const appInputSchema = z
  .object({
    url: z.string().min(1),
    timeout_seconds: int.optional(),
    max_concurrency: int.optional(),
    retry: z
      .object({
        max_attempts: int.optional(),
        initial_backoff_seconds: z.number().optional(),
        max_backoff_seconds: z.number().optional(),
        idempotent: z.boolean().optional(),
      })
      .strict()
      .optional(),
    queue_ttl_seconds: int.optional(),
    name: z.string().optional(),
    in_flight: z.unknown().optional(),
    queued: z.unknown().optional(),
    paused: z.unknown().optional(),
    created_at: z.unknown().optional(),
    updated_at: z.unknown().optional(),
  })
  .strict();

/** The app a PUT body describes; a 400 naming each bad field. */
export function appFromJson(name: string, body: unknown): appsPb.App {
  const parsed = appInputSchema.safeParse(body);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first?.path.length ? `${first.path.join(".")}: ` : "";
    throw new LonghaulError("invalid_argument", `invalid app: ${where}${first?.message ?? "bad body"}`);
  }
  const a = parsed.data;
  if (a.name !== undefined && a.name !== name) {
    throw new LonghaulError("invalid_argument", `body names app ${a.name} but the path names ${name}`);
  }
  return appsPb.App.fromPartial({
    name,
    url: a.url,
    timeoutSeconds: a.timeout_seconds ?? 0,
    maxConcurrency: a.max_concurrency ?? 0,
    retry: a.retry
      ? {
          maxAttempts: a.retry.max_attempts ?? 0,
          initialBackoffSeconds: a.retry.initial_backoff_seconds ?? 0,
          maxBackoffSeconds: a.retry.max_backoff_seconds ?? 0,
          idempotent: a.retry.idempotent ?? false,
        }
      : undefined,
    queueTtlSeconds: a.queue_ttl_seconds ?? 0,
  });
}

const instant = z.iso.datetime({ offset: true });

/** The body of `POST /v1/runs/retry`: a filter; unknown fields are a 400 naming them. */
const retryRunsSchema = z
  .object({
    app: z.string().min(1).optional(),
    status: z.enum(["failed", "timed_out", "cancelled", "expired"]).optional(),
    error_code: z.string().min(1).optional(),
    created_after: instant.optional(),
    created_before: instant.optional(),
    limit: int.min(1).max(1000).optional(),
  })
  .strict();

/** The RetryRuns request a `POST /v1/runs/retry` body describes; a 400 naming the bad field. */
export function retryRunsRequestFromJson(body: unknown): runsPb.RetryRunsRequest {
  const parsed = retryRunsSchema.safeParse(body);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first?.path.length ? `${first.path.join(".")}: ` : "";
    throw new LonghaulError("invalid_argument", `invalid filter: ${where}${first?.message ?? "bad body"}`);
  }
  const f = parsed.data;
  return runsPb.RetryRunsRequest.fromPartial({
    app: f.app ?? "",
    status: f.status ? runStatusToProto(f.status) : runsPb.RunStatus.RUN_STATUS_UNSPECIFIED,
    errorCode: f.error_code ?? "",
    createdAfter: f.created_after ? new Date(f.created_after) : undefined,
    createdBefore: f.created_before ? new Date(f.created_before) : undefined,
    limit: f.limit ?? 0,
  });
}

/** The query parameters of `GET /v1/runs` (docs/HTTP-API.md). */
export const LIST_RUNS_PARAMS = [
  "app",
  "status",
  "created_after",
  "created_before",
  "status_code",
  "id_prefix",
  "label",
  "limit",
  "cursor",
] as const;

/** `status_code=502` (one code) or `status_code=5xx` (a class): the range it stands for. */
export function parseStatusCodeFilter(raw: string): { min: number; max: number } {
  const exact = /^([1-5]\d\d)$/.exec(raw);
  if (exact) return { min: Number(exact[1]), max: Number(exact[1]) };
  const cls = /^([1-5])xx$/i.exec(raw);
  if (cls) return { min: Number(cls[1]) * 100, max: Number(cls[1]) * 100 + 99 };
  throw new LonghaulError("invalid_argument", "status_code must be an HTTP status code (100-599) or a class like 5xx");
}

/** The filters of `GET /v1/runs`, from its query; a 400 naming a bad or unknown one. */
export function listRunsRequestFromQuery(params: URLSearchParams): runsPb.ListRunsRequest {
  checkQueryParams(params, "GET /v1/runs", LIST_RUNS_PARAMS, ["label"]);
  const limitRaw = params.get("limit");
  let limit = 0;
  if (limitRaw) {
    if (!/^\d+$/.test(limitRaw)) throw new LonghaulError("invalid_argument", "limit must be a positive integer");
    limit = Number(limitRaw);
  }
  const status = params.get("status");
  const codes = params.get("status_code") ? parseStatusCodeFilter(params.get("status_code")!) : { min: 0, max: 0 };
  const labels: Record<string, string> = {};
  for (const raw of params.getAll("label")) {
    const [key, value] = parseLabelFilter(raw, "label");
    if (Object.hasOwn(labels, key) && labels[key] !== value) {
      // A run has one value per key: two values can never both match.
      throw new LonghaulError("invalid_argument", `label: ${key} is asked for with two values`);
    }
    labels[key] = value;
  }
  const idPrefix = params.get("id_prefix");
  if (idPrefix !== null && idPrefix.replace(/-/g, "").length < 8) {
    throw new LonghaulError("invalid_argument", "id_prefix must be at least 8 characters of a run id");
  }
  return {
    app: params.get("app") ?? "",
    status: status ? parseRunStatus(status) : runsPb.RunStatus.RUN_STATUS_UNSPECIFIED,
    createdAfter: dateParam(params, "created_after"),
    createdBefore: dateParam(params, "created_before"),
    statusCodeMin: codes.min,
    statusCodeMax: codes.max,
    idPrefix: idPrefix ?? "",
    labels,
    limit,
    cursor: params.get("cursor") ?? "",
  };
}

/** A webhook delivery and its attempts. */
export function deliveryToJson(d: notifierPb.Delivery) {
  return {
    run_id: d.runId,
    webhook_id: d.webhookId,
    url: d.url,
    state: d.state,
    attempts_made: d.attemptsMade,
    next_attempt_at: iso(d.nextAttemptAt),
    attempts: d.attempts.map((a) => ({
      attempt: a.attempt,
      started_at: iso(a.startedAt),
      duration_ms: a.durationMs,
      status_code: codeOrNull(a.statusCode),
      error: orNull(a.error),
      response_excerpt: orNull(a.responseExcerpt),
    })),
  };
}

/** A project's webhook signing secret(s). */
export function secretToJson(s: notifierPb.GetWebhookSecretResponse) {
  return {
    secret: s.secret,
    previous_secret: orNull(s.previousSecret),
    previous_expires_at: iso(s.previousExpiresAt),
  };
}
