import { runStatusFromProto, runStatusToProto, webhookStateFromProto, webhookStateToProto, type runsPb, type schedulerPb } from "@longhaul/shared/proto";
import type { RunView } from "../../core/run-registry.js";
import { joinAppUrl } from "@longhaul/shared/domain";
import type { RunRecord, StartedRun } from "../../core/model.js";

/** The proto enum of a stored status. */
export const statusToProto = runStatusToProto;

/** The filter's status name, "" for unspecified. */
export function statusFromProto(status: runsPb.RunStatus): string {
  return runStatusFromProto(status) ?? "";
}

export { webhookStateFromProto };

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
    webhookState: webhookStateToProto(run.webhook_state),
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
    expiresAt: orUndefined(run.expires_at),
    labels: run.labels ?? {},
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

/**
 * True when the app answered an async run and its stored body is no longer
 * stored (dropped after the retention period, or erased): a finished async
 * run the app answered always has a body, empty or not. A sync call is
 * recorded without its body; that is not a body gone.
 */
export function bodyGone(run: RunRecord): boolean {
  return run.mode === "async" && run.finished_at !== null && run.status_code !== null && run.response_body === null;
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
    bodyGone: bodyGone(run),
  };
}

/** What an invoker needs to make the call of an attempt it owns (ClaimRun's answer, a Handoff's run). */
export function claimResponse(run: StartedRun, leaseSeconds: number): schedulerPb.ClaimRunResponse {
  return {
    runId: run.runId,
    attempt: run.attempt,
    project: run.project,
    app: run.app,
    // The one rule for sync and async calls (shared/domain): the app URL's own query comes first.
    url: joinAppUrl(run.upstreamUrl, run.path, run.query),
    request: { method: run.method, path: run.path, query: run.query, headers: run.headers, body: run.body },
    deadline: new Date(Date.now() + run.timeoutSeconds * 1000),
    leaseSeconds,
    traceparent: run.traceparent,
    tracestate: run.tracestate,
  };
}
