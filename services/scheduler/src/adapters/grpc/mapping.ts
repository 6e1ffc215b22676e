import { runsPb } from "@longhaul/shared";
import type { RunView } from "../../core/run-registry.js";
import type { RunRecord, RunStatus, WebhookState } from "../../core/model.js";

const { RunStatus: PbStatus, WebhookState: PbWebhook } = runsPb;

const statusToPb: Record<RunStatus, runsPb.RunStatus> = {
  queued: PbStatus.RUN_STATUS_QUEUED,
  dispatched: PbStatus.RUN_STATUS_DISPATCHED,
  running: PbStatus.RUN_STATUS_RUNNING,
  succeeded: PbStatus.RUN_STATUS_SUCCEEDED,
  failed: PbStatus.RUN_STATUS_FAILED,
  timed_out: PbStatus.RUN_STATUS_TIMED_OUT,
  cancelled: PbStatus.RUN_STATUS_CANCELLED,
  expired: PbStatus.RUN_STATUS_EXPIRED,
};

const webhookToPb: Record<WebhookState, runsPb.WebhookState> = {
  none: PbWebhook.WEBHOOK_STATE_NONE,
  pending: PbWebhook.WEBHOOK_STATE_PENDING,
  delivered: PbWebhook.WEBHOOK_STATE_DELIVERED,
  failed: PbWebhook.WEBHOOK_STATE_FAILED,
};

export function statusToProto(status: string): runsPb.RunStatus {
  return statusToPb[status as RunStatus] ?? PbStatus.RUN_STATUS_UNSPECIFIED;
}

/** The filter's status name, "" for unspecified. */
export function statusFromProto(status: runsPb.RunStatus): string {
  const found = Object.entries(statusToPb).find(([, v]) => v === status);
  return found ? found[0] : "";
}

export function webhookStateFromProto(state: runsPb.WebhookState): WebhookState | undefined {
  const found = Object.entries(webhookToPb).find(([, v]) => v === state);
  return found?.[0] as WebhookState | undefined;
}

const orUndefined = (d: Date | null): Date | undefined => d ?? undefined;

/** A run as the public API shows it. */
export function runToProto({ run, attempts }: RunView): runsPb.Run {
  return {
    id: run.id,
    project: run.project_id,
    app: run.app,
    status: statusToProto(run.status),
    mode: run.mode,
    method: run.method,
    path: run.path,
    attempt: run.attempt,
    maxAttempts: run.max_attempts,
    priority: run.priority,
    timeoutSeconds: run.timeout_seconds,
    webhookUrl: run.webhook_url ?? "",
    webhookState: webhookToPb[run.webhook_state as WebhookState] ?? PbWebhook.WEBHOOK_STATE_UNSPECIFIED,
    statusCode: run.status_code ?? 0,
    errorCode: run.error_code ?? "",
    errorMessage: run.error_message ?? "",
    retryOf: run.retry_of ?? "",
    idempotencyKey: run.idempotency_key ?? "",
    createdAt: run.created_at,
    dispatchedAt: orUndefined(run.dispatched_at),
    startedAt: orUndefined(run.started_at),
    finishedAt: orUndefined(run.finished_at),
    notBefore: orUndefined(run.not_before),
    attempts: attempts.map((a) => ({
      attempt: a.attempt,
      invokerId: a.invoker_id,
      startedAt: a.started_at,
      finishedAt: orUndefined(a.finished_at),
      statusCode: a.status_code ?? 0,
      errorCode: a.error_code ?? "",
      errorMessage: a.error_message ?? "",
    })),
  };
}

/** The content type among stored headers, "" when none. */
export function contentTypeOf(headers: { name: string; value: string }[] | null): string {
  return headers?.find((h) => h.name.toLowerCase() === "content-type")?.value ?? "";
}

export function resultToProto(run: RunRecord): runsPb.GetRunResultResponse {
  return {
    runId: run.id,
    status: statusToProto(run.status),
    statusCode: run.status_code ?? 0,
    headers: run.response_headers ?? [],
    body: run.response_body ?? Buffer.alloc(0),
    contentType: contentTypeOf(run.response_headers),
    bodyTruncated: run.response_truncated,
  };
}
