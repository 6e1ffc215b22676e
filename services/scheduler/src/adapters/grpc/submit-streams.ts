import type { ServerDuplexStream } from "@grpc/grpc-js";
import { LonghaulError } from "@longhaul/shared/errors";
import { errorToFields, fromGrpcError, grpcStatusOf } from "@longhaul/shared/grpc";
import type { Logger } from "@longhaul/shared/logger";
import { runsPb, type schedulerPb } from "@longhaul/shared/proto";
import { SpanKind, contextFromCarrier, endRpcSpan, streamedCallSpan, trace, context, tracer } from "@longhaul/shared/telemetry";
import { createAnsweredStreams } from "./answered-streams.js";
import type { Submit } from "./public-services.js";

type Call = ServerDuplexStream<schedulerPb.SubmitRunsRequest, schedulerPb.SubmitRunsResponse>;
type Result = schedulerPb.SubmitRunsResponse["result"];

/** What a message on a stream stands for, in traces: the SubmitRun call it carries. */
const SPAN = streamedCallSpan(runsPb.RunServiceService.submitRun.path, "SubmitRuns");

/** Counts each message's answer by Longhaul code (`ok` for a submitted run). */
export type SubmitCounter = (code: string) => void;

/**
 * The gateway's SubmitRuns streams on this copy (SchedulerInternalService/
 * SubmitRuns). Each message is one submit, made exactly as RunService/
 * SubmitRun makes it (`submit`), in the trace context the message carries,
 * under a server span named as the unary call's. Messages are handled
 * concurrently (submits share commits) and answered as they finish; a
 * failure answers only its own message. At shutdown the streams drain as
 * every answered stream does (answered-streams.ts).
 */
export function createSubmitStreams(submit: Submit, log: Logger, count: SubmitCounter = () => undefined) {
  async function answer(req: schedulerPb.SubmitRunsRequest): Promise<Result> {
    // Each message continues the gateway's trace, as a unary call's metadata would.
    const parent = contextFromCarrier(req.traceparent, req.tracestate);
    const span = tracer.startSpan(SPAN.name, { kind: SpanKind.SERVER, attributes: SPAN.attributes }, parent);
    try {
      if (!req.submit) throw new LonghaulError("invalid_argument", "submit: required");
      const run = req.submit;
      const submitted = await context.with(trace.setSpan(parent, span), () => submit(req.authorization, run));
      endRpcSpan(span, 0);
      count("ok");
      return { $case: "submitted", value: submitted };
    } catch (err) {
      const e = fromGrpcError(err);
      if (e.code === "internal") log.error({ err, method: "SubmitRuns" }, "internal error in handler");
      endRpcSpan(span, grpcStatusOf(e.code), e);
      count(e.code);
      return { $case: "error", value: errorToFields(e) };
    }
  }

  const streams = createAnsweredStreams<schedulerPb.SubmitRunsRequest, schedulerPb.SubmitRunsResponse>({
    method: "SubmitRuns",
    shutdownMessage: "the scheduler is shutting down; submit to another copy",
    answer: async (req) => ({ id: req.id, result: await answer(req) }),
    // Not taken: the client sends it again to another copy, under the same run id.
    refuse: (req, err) => {
      count(err.code);
      return { id: req.id, result: { $case: "error", value: errorToFields(err) } };
    },
    log,
  });

  return {
    serve: (call: Call) => streams.serve(call),
    /**
     * Takes no more submits: each stream ends (UNAVAILABLE) once what it
     * brought is answered. Resolves when every stream has ended, or after
     * `timeoutMs` (the gateway sends the submits still waiting again, under
     * their run ids, to another copy).
     */
    close: (timeoutMs: number) => streams.close(timeoutMs),
  };
}

export type SubmitStreams = ReturnType<typeof createSubmitStreams>;
