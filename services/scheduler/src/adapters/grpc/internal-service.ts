import type { ServerDuplexStream } from "@grpc/grpc-js";
import { LonghaulError } from "@longhaul/shared/errors";
import type { Logger } from "@longhaul/shared/logger";
import { unary } from "@longhaul/shared/grpc";
import type { schedulerPb } from "@longhaul/shared/proto";
import type { RunLifecycle } from "../../core/run-lifecycle.js";
import type { Tenancy } from "../../core/tenancy.js";
import type { AttemptStreams } from "./attempt-streams.js";
import type { HandoffStreams } from "./handoff-streams.js";
import type { SubmitStreams } from "./submit-streams.js";
import { checkStreamIds } from "./stream-ids.js";
import { bodyGone, contentTypeOf, statusToProto, webhookStateFromProto } from "./mapping.js";

/** What {@link createInternalService} serves from. */
export interface InternalServiceDeps {
  lifecycle: RunLifecycle;
  tenancy: Tenancy;
  /** The gateway's SubmitRuns streams. */
  submits: SubmitStreams;
  /** The invokers' Attempts streams (claims and outcomes, also as unary calls). */
  attempts: AttemptStreams;
  /** The invokers' Handoff streams. */
  handoffs: HandoffStreams;
  /** Told to invokers in each heartbeat's answer (SCHEDULER_LEASE_SECONDS). */
  leaseSeconds: number;
  log: Logger;
}

/** `longhaul.internal.v1.SchedulerInternalService`: what the invoker and notifier call. */
export function createInternalService(deps: InternalServiceDeps): schedulerPb.SchedulerInternalServiceServer {
  const { lifecycle, tenancy, submits, attempts, handoffs, leaseSeconds, log } = deps;
  return {
    authenticate: unary(log, "Authenticate", async (req: schedulerPb.AuthenticateRequest) => {
      const caller = await tenancy.authenticate(req.apiKey);
      return { project: caller.project, scopes: [...caller.scopes] };
    }),
    claimRun: unary(log, "ClaimRun", attempts.claim),
    heartbeat: unary(log, "Heartbeat", async (req: schedulerPb.HeartbeatRequest) => ({
      lost: await lifecycle.heartbeat(
        req.invokerId,
        req.runs.map((r) => ({ runId: r.runId, attempt: r.attempt })),
        checkStreamIds(req.endedStreams),
      ),
      leaseSeconds,
    })),
    completeRun: unary(log, "CompleteRun", attempts.complete),
    attempts: (call: ServerDuplexStream<schedulerPb.AttemptsRequest, schedulerPb.AttemptsResponse>) => attempts.serve(call),
    handoff: (call: ServerDuplexStream<schedulerPb.HandoffRequest, schedulerPb.HandoffResponse>) =>
      handoffs.serve(call, (invokerId, held, endedStreams) => lifecycle.returnUnreceived(invokerId, held, endedStreams)),
    submitRuns: (call: ServerDuplexStream<schedulerPb.SubmitRunsRequest, schedulerPb.SubmitRunsResponse>) => submits.serve(call),
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
        bodyGone: bodyGone(run),
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
    updateWebhookStates: unary(log, "UpdateWebhookStates", async (req: schedulerPb.UpdateWebhookStatesRequest) => {
      const states = req.states.map((s) => {
        const state = webhookStateFromProto(s.state);
        if (!state || state === "none") throw new LonghaulError("invalid_argument", `states: ${s.runId}: pending, delivered or failed`);
        return { runId: s.runId, state };
      });
      return { notFoundRunIds: await lifecycle.updateWebhookStates(states) };
    }),
  };
}
