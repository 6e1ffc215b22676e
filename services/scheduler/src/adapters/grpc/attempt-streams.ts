import type { ServerDuplexStream } from "@grpc/grpc-js";
import { LonghaulError } from "@longhaul/shared/errors";
import { ATTEMPTS_BATCHES_METADATA_KEY } from "@longhaul/shared/grpc";
import type { Logger } from "@longhaul/shared/logger";
import type { schedulerPb } from "@longhaul/shared/proto";
import { contextFromCarrier, inSpan, SpanKind } from "@longhaul/shared/telemetry";
import { startedRun } from "../../core/model.js";
import type { RunLifecycle } from "../../core/run-lifecycle.js";
import { createAnsweredStreams } from "./answered-streams.js";
import { claimResponse, statusToProto } from "./mapping.js";

type Call = ServerDuplexStream<schedulerPb.AttemptsRequest, schedulerPb.AttemptsResponse>;
type Result = schedulerPb.AttemptsResponse["result"];

/**
 * Claims and outcomes of the invokers' attempts: as unary calls
 * (SchedulerInternalService/ClaimRun, CompleteRun) and as messages on their
 * Attempts streams, each answered as its unary form would be. At shutdown
 * the streams drain as every answered stream does (answered-streams.ts): a
 * claim or outcome taken is answered, the stream then ends UNAVAILABLE, and
 * the invoker sends what got no answer again on a stream to another copy
 * (a claim by the owner and an outcome are both safe to repeat: fenced by
 * attempt in run-lifecycle.ts).
 */
export function createAttemptStreams(lifecycle: RunLifecycle, leaseSeconds: number, log: Logger) {
  async function claim(req: schedulerPb.ClaimRunRequest): Promise<schedulerPb.ClaimRunResponse> {
    return claimResponse(startedRun(await lifecycle.claim(req.runId, req.attempt, req.invokerId)), leaseSeconds);
  }

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
  async function answer(req: schedulerPb.AttemptsRequest): Promise<Result> {
    try {
      const call = req.call;
      if (!call) throw new LonghaulError("invalid_argument", "call: claim or complete");
      // Each message continues the invoker's trace, as a unary call's metadata would.
      const parent = contextFromCarrier(req.traceparent, req.tracestate);
      const spanName = call.$case === "claim" ? "run.claim" : "run.complete";
      return await inSpan(spanName, { kind: SpanKind.SERVER, parent, attributes: { "rpc.method": "Attempts" } }, async () =>
        call.$case === "claim"
          ? { $case: "claim" as const, value: await claim(call.value) }
          : { $case: "complete" as const, value: await complete(call.value) },
      );
    } catch (err) {
      const e = LonghaulError.from(err);
      if (e.code === "internal") log.error({ err, method: "Attempts" }, "internal error in handler");
      return { $case: "error", value: { code: e.code, message: e.message } };
    }
  }

  const streams = createAnsweredStreams<schedulerPb.AttemptsRequest, schedulerPb.AttemptsResponse>({
    method: "Attempts",
    shutdownMessage: "the scheduler is shutting down; send it to another copy",
    answer: async (req) => ({ id: req.id, result: await answer(req) }),
    refuse: (req, err) => ({ id: req.id, result: { $case: "error", value: { code: err.code, message: err.message } } }),
    // An invoker sends the outcomes of a short window in one message once it sees this header.
    unpack: (req) => (req.more.length === 0 ? [req] : [req, ...req.more]),
    headers: { [ATTEMPTS_BATCHES_METADATA_KEY]: "1" },
    log,
  });

  return {
    claim,
    complete,
    /** Attempts: each request answered on the stream as it finishes; ends OK once the invoker half-closed it and every answer was written. */
    serve: (call: Call) => streams.serve(call),
    /** Takes no more claims or outcomes; resolves once every stream ended (UNAVAILABLE), or after `timeoutMs`. */
    close: (timeoutMs: number) => streams.close(timeoutMs),
  };
}

export type AttemptStreams = ReturnType<typeof createAttemptStreams>;
