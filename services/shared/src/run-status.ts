import { RunStatus, WebhookState } from "./gen/longhaul/v1/runs.js";

/** A run's status by name, as the HTTP API, the logs and the database spell it. */
export type RunStatusName =
  | "queued"
  | "dispatched"
  | "running"
  | "succeeded"
  | "failed"
  | "timed_out"
  | "cancelled"
  | "expired";

/** A run's webhook delivery state by name. */
export type WebhookStateName = "none" | "pending" | "delivered" | "failed";

const runStatusToPb: Record<RunStatusName, RunStatus> = {
  queued: RunStatus.RUN_STATUS_QUEUED,
  dispatched: RunStatus.RUN_STATUS_DISPATCHED,
  running: RunStatus.RUN_STATUS_RUNNING,
  succeeded: RunStatus.RUN_STATUS_SUCCEEDED,
  failed: RunStatus.RUN_STATUS_FAILED,
  timed_out: RunStatus.RUN_STATUS_TIMED_OUT,
  cancelled: RunStatus.RUN_STATUS_CANCELLED,
  expired: RunStatus.RUN_STATUS_EXPIRED,
};

/** Every status name, in lifecycle order. */
export const RUN_STATUS_NAMES = Object.keys(runStatusToPb) as readonly RunStatusName[];

const webhookStateToPb: Record<WebhookStateName, WebhookState> = {
  none: WebhookState.WEBHOOK_STATE_NONE,
  pending: WebhookState.WEBHOOK_STATE_PENDING,
  delivered: WebhookState.WEBHOOK_STATE_DELIVERED,
  failed: WebhookState.WEBHOOK_STATE_FAILED,
};

const invert = <K extends string, V extends number>(m: Record<K, V>) =>
  new Map<number, K>(Object.entries(m).map(([k, v]) => [v as number, k as K]));
const runStatusByPb = invert(runStatusToPb);
const webhookStateByPb = invert(webhookStateToPb);

/** The proto enum of a status name; UNSPECIFIED for anything else. */
export function runStatusToProto(name: string): RunStatus {
  return runStatusToPb[name as RunStatusName] ?? RunStatus.RUN_STATUS_UNSPECIFIED;
}

/** The name of a proto status; undefined for UNSPECIFIED and unknown values. */
export function runStatusFromProto(status: RunStatus): RunStatusName | undefined {
  return runStatusByPb.get(status);
}

/** The proto enum of a webhook state name; UNSPECIFIED for anything else. */
export function webhookStateToProto(name: string): WebhookState {
  return webhookStateToPb[name as WebhookStateName] ?? WebhookState.WEBHOOK_STATE_UNSPECIFIED;
}

/** The name of a proto webhook state; undefined for UNSPECIFIED and unknown values. */
export function webhookStateFromProto(state: WebhookState): WebhookStateName | undefined {
  return webhookStateByPb.get(state);
}
