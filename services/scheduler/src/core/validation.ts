import { LonghaulError } from "@longhaul/shared/errors";
import { validateWebhookUrl } from "@longhaul/shared/egress";
import { checkLabels, MAX_QUEUE_TTL_SECONDS } from "@longhaul/shared/domain";
import { MAX_TIMEOUT_SECONDS, type AppSettings } from "./model.js";

const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const METHOD = /^[A-Z][A-Z-]{0,19}$/;

function invalid(field: string, message: string): LonghaulError {
  return new LonghaulError("invalid_argument", `${field}: ${message}`);
}

/** App and project names: they appear in URLs and NATS subjects. */
export function checkName(field: string, name: string): string {
  if (!NAME.test(name)) throw invalid(field, "lowercase letters, digits, '-' and '_', at most 63, starting with a letter or digit");
  return name;
}

function intIn(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) throw invalid(field, `must be an integer from ${min} to ${max}`);
  return value;
}

function numberIn(field: string, value: number, min: number, max: number): number {
  if (!Number.isFinite(value) || value < min || value > max) throw invalid(field, `must be a number from ${min} to ${max}`);
  return value;
}

/** The app as sent by a client; zeros mean "the default" where zero is not a valid value. */
export interface AppInput {
  name: string;
  url: string;
  timeoutSeconds: number;
  maxConcurrency: number;
  queueTtlSeconds: number;
  retry?: { maxAttempts: number; initialBackoffSeconds: number; maxBackoffSeconds: number; idempotent: boolean } | undefined;
}

/** Validates an app and fills its defaults (documented in the README's app table). */
export function normaliseApp(input: AppInput): AppSettings {
  checkName("name", input.name);
  let url: URL;
  try {
    url = new URL(input.url);
  } catch {
    throw invalid("url", "must be an absolute http(s) URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw invalid("url", "must be an absolute http(s) URL");
  const retry = input.retry;
  const initial = retry?.initialBackoffSeconds || 1;
  const max = retry?.maxBackoffSeconds || Math.max(300, initial);
  const settings: AppSettings = {
    name: input.name,
    url: url.toString().replace(/\/$/, ""),
    timeoutSeconds: intIn("timeout_seconds", input.timeoutSeconds || MAX_TIMEOUT_SECONDS, 1, MAX_TIMEOUT_SECONDS),
    maxConcurrency: intIn("max_concurrency", input.maxConcurrency, 0, 1_000_000),
    maxAttempts: intIn("retry.max_attempts", retry?.maxAttempts || 3, 1, 20),
    initialBackoffSeconds: numberIn("retry.initial_backoff_seconds", initial, 0.1, 3600),
    maxBackoffSeconds: numberIn("retry.max_backoff_seconds", max, initial, 86_400),
    idempotent: retry?.idempotent ?? false,
    queueTtlSeconds: intIn("queue_ttl_seconds", input.queueTtlSeconds, 0, MAX_QUEUE_TTL_SECONDS),
  };
  return settings;
}

/**
 * The range of run ids a prefix stands for: `id_prefix` of a listing is at
 * least 8 hex digits of a run id (dashes and case ignored), so a run id
 * copied from a log, whole or cut short, finds its run.
 */
export function idPrefixRange(prefix: string): { first: string; last: string } {
  const hex = prefix.replace(/-/g, "").toLowerCase();
  if (!/^[0-9a-f]{8,32}$/.test(hex)) throw invalid("id_prefix", "must be 8 to 32 hex digits of a run id (dashes allowed)");
  const uuid = (h: string) => `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  return { first: uuid(hex.padEnd(32, "0")), last: uuid(hex.padEnd(32, "f")) };
}

/** A submit as the core sees it, before validation. */
export interface SubmitInput {
  app: string;
  method: string;
  path: string;
  query: string;
  headers: { name: string; value: string }[];
  body: Buffer;
  webhookUrl: string;
  timeoutSeconds: number;
  priority: number;
  idempotencyKey: string;
  notBefore: Date | undefined;
  /** Seconds from submit within which the run must start; 0: none of its own (the app's queue TTL still applies). */
  queueTtlSeconds: number;
  /** Labels to find the run by; checked here, whichever client sent them. */
  labels: Record<string, string>;
  /** The run id the caller chose (a UUID), or empty. */
  runId?: string;
}

export interface SubmitLimits {
  maxRequestBytes: number;
  allowPrivateWebhooks: boolean;
  now: Date;
}

/**
 * Checks a submit against the app and the limits; returns the effective
 * timeout and the run's own start deadline (null without a queue TTL).
 */
export function checkSubmit(input: SubmitInput, app: AppSettings, limits: SubmitLimits): { timeoutSeconds: number; expiresAt: Date | null } {
  if (!METHOD.test(input.method)) throw invalid("request.method", "must be an HTTP method in upper case");
  if (!input.path.startsWith("/") || input.path.length > 8192) throw invalid("request.path", "must start with '/' and be at most 8192 characters");
  if (input.query.length > 8192) throw invalid("request.query", "at most 8192 characters");
  if (input.headers.length > 200) throw invalid("request.headers", "at most 200 headers");
  if (input.body.length > limits.maxRequestBytes) {
    throw new LonghaulError("payload_too_large", `request body is over ${limits.maxRequestBytes} bytes`);
  }
  if (input.webhookUrl) validateWebhookUrl(input.webhookUrl, { allowPrivate: limits.allowPrivateWebhooks });
  intIn("priority", input.priority, -100, 100);
  if (input.timeoutSeconds < 0 || !Number.isInteger(input.timeoutSeconds)) throw invalid("timeout_seconds", "must be a positive integer");
  if (input.timeoutSeconds > app.timeoutSeconds) {
    throw invalid("timeout_seconds", `must be at most the app's timeout (${app.timeoutSeconds})`);
  }
  if (input.idempotencyKey.length > 255) throw invalid("idempotency_key", "at most 255 characters");
  checkLabels(input.labels);
  if (input.notBefore && input.notBefore.getTime() > limits.now.getTime() + 30 * 86_400_000) {
    throw invalid("not_before", "at most 30 days ahead");
  }
  let expiresAt: Date | null = null;
  if (input.queueTtlSeconds !== 0) {
    intIn("queue_ttl_seconds", input.queueTtlSeconds, 1, MAX_QUEUE_TTL_SECONDS);
    expiresAt = new Date(limits.now.getTime() + input.queueTtlSeconds * 1000);
    // A deadline before the earliest start could never be met: refused, not stored to expire.
    if (input.notBefore && input.notBefore.getTime() >= expiresAt.getTime()) {
      throw invalid("queue_ttl_seconds", "the run would expire before not_before lets it start");
    }
  }
  return { timeoutSeconds: input.timeoutSeconds || app.timeoutSeconds, expiresAt };
}

/** Statuses a bulk retry may select: finished, and not succeeded. */
export const RETRYABLE_STATUSES = ["failed", "timed_out", "cancelled", "expired"] as const;
/** Most runs one bulk retry call retries. */
export const MAX_BULK_RETRY = 1000;
const ERROR_CODE = /^[a-z][a-z0-9_]{0,62}$/;

/** A bulk retry's filter as a client sent it ("" and 0 mean unset). */
export interface RetryQuery {
  app: string;
  status: string;
  errorCode: string;
  createdAfter?: Date | undefined;
  createdBefore?: Date | undefined;
  limit: number;
}

/**
 * Validates a bulk retry's filter. It must narrow the match by more than the
 * status (an app, an error code or a time range): "retry every failed run
 * ever" is never what an operator meant.
 */
export function checkRetryQuery(project: string, q: RetryQuery) {
  if (q.app) checkName("app", q.app);
  const status = q.status || "failed";
  if (!(RETRYABLE_STATUSES as readonly string[]).includes(status)) throw invalid("status", `one of ${RETRYABLE_STATUSES.join(", ")}`);
  if (q.errorCode && !ERROR_CODE.test(q.errorCode)) throw invalid("error_code", "an error code such as interrupted or app_error");
  if (!q.app && !q.errorCode && !q.createdAfter && !q.createdBefore) {
    throw invalid("filter", "name at least one of app, error_code, created_after or created_before");
  }
  if (q.createdAfter && q.createdBefore && q.createdAfter >= q.createdBefore) throw invalid("created_after", "must be before created_before");
  const limit = q.limit === 0 ? MAX_BULK_RETRY : intIn("limit", q.limit, 1, MAX_BULK_RETRY);
  return {
    project,
    status,
    app: q.app || undefined,
    errorCode: q.errorCode || undefined,
    createdAfter: q.createdAfter,
    createdBefore: q.createdBefore,
    limit,
  };
}
