import { RunStatus, WebhookState } from "../gen/longhaul/v1/runs.js";
import type { RunStatus as RunStatusName, WebhookState as WebhookStateName } from "../domain/run-status.js";

// One mapping of the domain's status and webhook state names to the proto enums.
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
