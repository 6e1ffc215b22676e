/**
 * A run's status by name, as the HTTP API, the logs and the database spell it
 * (DESIGN.md "Run lifecycle"): `queued` → (`dispatched`) → `running` → one of
 * the finished statuses; `queued` may also end `expired` or `cancelled`.
 */
export type RunStatus =
  | "queued"
  | "dispatched"
  | "running"
  | "succeeded"
  | "failed"
  | "timed_out"
  | "cancelled"
  | "expired";

/** Every status, in lifecycle order. */
export const RUN_STATUSES: readonly RunStatus[] = Object.freeze([
  "queued",
  "dispatched",
  "running",
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "expired",
]);

/** The statuses a run ends in: once in one, it changes no more (its webhook state still may). */
export const FINISHED_RUN_STATUSES: ReadonlySet<RunStatus> = new Set<RunStatus>([
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "expired",
]);

/** The statuses of a run not yet finished: waiting, handed to an invoker, or held. */
export const ACTIVE_RUN_STATUSES: ReadonlySet<RunStatus> = new Set<RunStatus>(
  RUN_STATUSES.filter((s) => !FINISHED_RUN_STATUSES.has(s)),
);

/** True for a status name of {@link RUN_STATUSES}. */
export function isRunStatus(value: unknown): value is RunStatus {
  return typeof value === "string" && (RUN_STATUSES as readonly string[]).includes(value);
}

/** True once a run can change no more: its status is one of {@link FINISHED_RUN_STATUSES}. */
export function isFinished(status: string): boolean {
  return FINISHED_RUN_STATUSES.has(status as RunStatus);
}

/** A run's webhook delivery state, beside its status (DESIGN.md "Webhooks"). */
export type WebhookState = "none" | "pending" | "delivered" | "failed";

/** Every webhook state. */
export const WEBHOOK_STATES: readonly WebhookState[] = Object.freeze(["none", "pending", "delivered", "failed"]);

/** Stable error codes recorded on runs and attempts (docs/ARCHITECTURE.md "Error codes of runs"). */
export type RunErrorCode =
  | "app_error"
  | "connect_error"
  | "timeout"
  /** Cut after the request was sent: reset, lost invoker, drain deadline. */
  | "interrupted"
  | "cancelled_by_user"
  | "queue_ttl_exceeded"
  | "response_too_large";
