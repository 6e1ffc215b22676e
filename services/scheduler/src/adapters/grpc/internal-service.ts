import { LonghaulError } from "@longhaul/shared/errors";
import type { Logger } from "@longhaul/shared/logger";
import { joinAppUrl } from "@longhaul/shared/domain";
import { unary } from "@longhaul/shared/grpc";
import { schedulerPb } from "@longhaul/shared/proto";
import type { RunLifecycle } from "../../core/run-lifecycle.js";
import type { RunRegistry } from "../../core/run-registry.js";
import type { Tenancy } from "../../core/tenancy.js";
import { contentTypeOf, statusToProto, webhookStateFromProto } from "./mapping.js";

/** `longhaul.internal.v1.SchedulerInternalService`: what the invoker and notifier call. */
export function createInternalService(
  registry: RunRegistry,
  lifecycle: RunLifecycle,
  leaseSeconds: number,
  log: Logger,
  tenancy: Tenancy,
): schedulerPb.SchedulerInternalServiceServer {
  return {
    authenticate: unary(log, "Authenticate", async (req: schedulerPb.AuthenticateRequest) => {
      const caller = await tenancy.authenticate(req.apiKey);
      return { project: caller.project, scopes: [...caller.scopes] };
    }),
    claimRun: unary(log, "ClaimRun", async (req: schedulerPb.ClaimRunRequest) => {
      const run = await lifecycle.claim(req.runId, req.attempt, req.invokerId);
      return {
        runId: run.id,
        attempt: run.attempt,
        project: run.project_id,
        app: run.app,
        // The one rule for sync and async calls (shared/domain): the app URL's own query comes first.
        url: joinAppUrl(run.upstream_url, run.path, run.query),
        request: {
          method: run.method,
          path: run.path,
          query: run.query,
          headers: run.request_headers,
          body: run.request_body ?? Buffer.alloc(0),
        },
        deadline: new Date(Date.now() + run.timeout_seconds * 1000),
        leaseSeconds,
        traceparent: run.traceparent,
        tracestate: run.tracestate,
      };
    }),
    heartbeat: unary(log, "Heartbeat", async (req: schedulerPb.HeartbeatRequest) => ({
      lost: await lifecycle.heartbeat(
        req.invokerId,
        req.runs.map((r) => ({ runId: r.runId, attempt: r.attempt })),
      ),
      leaseSeconds,
    })),
    completeRun: unary(log, "CompleteRun", async (req: schedulerPb.CompleteRunRequest) => {
      const run = await lifecycle.complete(req.runId, req.attempt, req.invokerId, {
        statusCode: req.statusCode,
        headers: req.headers,
        body: req.body,
        bodyTruncated: req.bodyTruncated,
        errorCode: req.errorCode,
        errorMessage: req.errorMessage,
        retryAfterSeconds: req.retryAfterSeconds,
      });
      return { accepted: run !== undefined, status: statusToProto(run?.status ?? "") };
    }),
    releaseRun: unary(log, "ReleaseRun", async (req: schedulerPb.ReleaseRunRequest) => ({
      accepted: (await lifecycle.release(req.runId, req.attempt, req.invokerId, req.reason)) !== undefined,
    })),
    getDeliveryInput: unary(log, "GetDeliveryInput", async (req: schedulerPb.GetDeliveryInputRequest) => {
      const run = await lifecycle.deliveryInput(req.runId);
      return {
        runId: run.id,
        project: run.project_id,
        app: run.app,
        webhookUrl: run.webhook_url ?? "",
        status: statusToProto(run.status),
        statusCode: run.status_code ?? 0,
        contentType: contentTypeOf(run.response_headers),
        body: run.response_body ?? Buffer.alloc(0),
        errorCode: run.error_code ?? "",
        errorMessage: run.error_message ?? "",
        finishedAt: run.finished_at ?? undefined,
        traceparent: run.traceparent,
        bodyTruncated: run.response_truncated,
        labels: run.labels ?? {},
        createdAt: run.created_at,
        startedAt: run.started_at ?? undefined,
        requestBody: run.request_body ?? Buffer.alloc(0),
      };
    }),
    recordSyncRun: unary(log, "RecordSyncRun", async (req: schedulerPb.RecordSyncRunRequest) => ({
      runId: await lifecycle.recordSync({
        project: req.project,
        app: req.app,
        method: req.method,
        path: req.path,
        statusCode: req.statusCode,
        errorCode: req.errorCode,
        errorMessage: req.errorMessage,
        startedAt: req.startedAt ?? new Date(),
        finishedAt: req.finishedAt ?? new Date(),
      }),
    })),
    updateWebhookState: unary(log, "UpdateWebhookState", async (req: schedulerPb.UpdateWebhookStateRequest) => {
      const state = webhookStateFromProto(req.state);
      if (!state || state === "none") throw new LonghaulError("invalid_argument", "state: pending, delivered or failed");
      await lifecycle.updateWebhookState(req.runId, state);
      return {};
    }),
  };
}
