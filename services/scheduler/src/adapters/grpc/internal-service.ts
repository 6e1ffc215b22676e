import type { ServerDuplexStream } from "@grpc/grpc-js";
import { LonghaulError } from "@longhaul/shared/errors";
import type { Logger } from "@longhaul/shared/logger";
import { unary } from "@longhaul/shared/grpc";
import { schedulerPb } from "@longhaul/shared/proto";
import { contextFromCarrier, inSpan, SpanKind } from "@longhaul/shared/telemetry";
import { startedRun, type RunRecord } from "../../core/model.js";
import type { RunLifecycle } from "../../core/run-lifecycle.js";
import type { RunRegistry } from "../../core/run-registry.js";
import type { Tenancy } from "../../core/tenancy.js";
import type { HandoffStreams } from "./handoff-streams.js";
import type { SubmitStreams } from "./submit-streams.js";
import { checkStreamIds } from "./stream-ids.js";
import { bodyGone, claimResponse, contentTypeOf, statusToProto, webhookStateFromProto } from "./mapping.js";

/** `longhaul.internal.v1.SchedulerInternalService`: what the invoker and notifier call. */
export function createInternalService(
  registry: RunRegistry,
  lifecycle: RunLifecycle,
  leaseSeconds: number,
  log: Logger,
  tenancy: Tenancy,
  handoffs: HandoffStreams,
  submits: SubmitStreams,
): schedulerPb.SchedulerInternalServiceServer {
  const claim = (req: schedulerPb.ClaimRunRequest) => lifecycle.claim(req.runId, req.attempt, req.invokerId);

  /** What an invoker needs to make the call of the attempt it claimed. */
  const claimed = (run: RunRecord) => claimResponse(startedRun(run), leaseSeconds);

  async function complete(req: schedulerPb.CompleteRunRequest): Promise<schedulerPb.CompleteRunResponse> {
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
  }

  /** One request of an Attempts stream, answered as its unary form would be. */
  async function answer(req: schedulerPb.AttemptsRequest): Promise<schedulerPb.AttemptsResponse["result"]> {
    const call = req.call;
    if (!call) throw new LonghaulError("invalid_argument", "call: claim or complete");
    // Each message continues the invoker's trace, as a unary call's metadata would.
    const parent = contextFromCarrier(req.traceparent, req.tracestate);
    const spanName = call.$case === "claim" ? "run.claim" : "run.complete";
    return inSpan(spanName, { kind: SpanKind.SERVER, parent, attributes: { "rpc.method": "Attempts" } }, async () =>
      call.$case === "claim"
        ? { $case: "claim" as const, value: claimed(await claim(call.value)) }
        : { $case: "complete" as const, value: await complete(call.value) },
    );
  }

  /**
   * Attempts: each request answered on the stream as it finishes. The stream
   * ends once the invoker half-closed it and every answer was written.
   */
  function attempts(call: ServerDuplexStream<schedulerPb.AttemptsRequest, schedulerPb.AttemptsResponse>): void {
    let open = true;
    let pending = 0;
    let ended = false;
    const finish = () => {
      if (ended && pending === 0 && open) {
        open = false;
        call.end();
      }
    };
    call.on("data", (req: schedulerPb.AttemptsRequest) => {
      pending++;
      void answer(req)
        .catch((err: unknown) => {
          const e = LonghaulError.from(err);
          if (e.code === "internal") log.error({ err, method: "Attempts" }, "internal error in handler");
          return { $case: "error" as const, value: { code: e.code, message: e.message } };
        })
        .then((result) => {
          pending--;
          if (open) call.write({ id: req.id, result });
          finish();
        });
    });
    call.on("end", () => {
      ended = true;
      finish();
    });
    call.on("cancelled", () => (open = false));
    call.on("error", () => (open = false));
  }

  return {
    authenticate: unary(log, "Authenticate", async (req: schedulerPb.AuthenticateRequest) => {
      const caller = await tenancy.authenticate(req.apiKey);
      return { project: caller.project, scopes: [...caller.scopes] };
    }),
    claimRun: unary(log, "ClaimRun", async (req: schedulerPb.ClaimRunRequest) => claimed(await claim(req))),
    heartbeat: unary(log, "Heartbeat", async (req: schedulerPb.HeartbeatRequest) => ({
      lost: await lifecycle.heartbeat(
        req.invokerId,
        req.runs.map((r) => ({ runId: r.runId, attempt: r.attempt })),
        checkStreamIds(req.endedStreams),
      ),
      leaseSeconds,
    })),
    completeRun: unary(log, "CompleteRun", complete),
    attempts: (call: ServerDuplexStream<schedulerPb.AttemptsRequest, schedulerPb.AttemptsResponse>) => attempts(call),
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
