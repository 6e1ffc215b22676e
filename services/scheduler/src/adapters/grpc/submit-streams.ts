import { Metadata, type ServerDuplexStream } from "@grpc/grpc-js";
import { LonghaulError } from "@longhaul/shared/errors";
import { errorToFields, fromGrpcError, grpcStatusOf, toServiceError } from "@longhaul/shared/grpc";
import type { Logger } from "@longhaul/shared/logger";
import { runsPb, type schedulerPb } from "@longhaul/shared/proto";
import { SpanKind, contextFromCarrier, endRpcSpan, streamedCallSpan, trace, context, tracer } from "@longhaul/shared/telemetry";
import type { Submit } from "./public-services.js";

type Call = ServerDuplexStream<schedulerPb.SubmitRunsRequest, schedulerPb.SubmitRunsResponse>;
type Result = schedulerPb.SubmitRunsResponse["result"];

/**
 * Messages of one stream being handled at once before it stops reading (the
 * client bounds its own far lower; this only guards a broken client): HTTP/2
 * flow control then holds the rest back.
 */
const MAX_PENDING = 4_096;

/** What a message on a stream stands for, in traces: the SubmitRun call it carries. */
const SPAN = streamedCallSpan(runsPb.RunServiceService.submitRun.path, "SubmitRuns");

const SHUTTING_DOWN = new LonghaulError("unavailable", "the scheduler is shutting down; submit to another copy");

interface Stream {
  call: Call;
  pending: number;
  paused: boolean;
  /** The client half-closed: no more messages come. */
  halfClosed: boolean;
  /** Writable: not cancelled, not ended by us. */
  open: boolean;
}

/** Counts each message's answer by Longhaul code (`ok` for a submitted run). */
export type SubmitCounter = (code: string) => void;

/**
 * The gateway's SubmitRuns streams on this copy (SchedulerInternalService/
 * SubmitRuns). Each message is one submit, made exactly as RunService/
 * SubmitRun makes it (`submit`), in the trace context the message carries,
 * under a server span named as the unary call's. Messages are handled
 * concurrently (submits share commits) and answered as they finish; a
 * failure answers only its own message.
 */
export function createSubmitStreams(submit: Submit, log: Logger, count: SubmitCounter = () => undefined) {
  const streams = new Set<Stream>();
  let closing = false;
  let onDrained: (() => void) | undefined;
  /** Messages taken before close() and answered after it. */
  let answeredClosing = 0;

  /** Ends a stream once every message it brought is answered: OK after the client's half-close, UNAVAILABLE when closing. */
  const settle = (s: Stream) => {
    if (!s.open || s.pending > 0 || !(s.halfClosed || closing)) return;
    s.open = false;
    streams.delete(s);
    if (closing) {
      // The client opens its next stream on another copy (this one has said GOAWAY by now).
      s.call.emit("error", toServiceError(SHUTTING_DOWN));
    } else {
      s.call.end();
    }
    if (closing && streams.size === 0) onDrained?.();
  };

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

  function serve(call: Call): void {
    const s: Stream = { call, pending: 0, paused: false, halfClosed: false, open: true };
    streams.add(s);
    // Headers at once: the client takes the stream as open only once they arrive.
    call.sendMetadata(new Metadata());
    call.on("data", (req: schedulerPb.SubmitRunsRequest) => {
      if (!s.open) return;
      if (closing) {
        // Not taken: the client sends it again to another copy, under the same run id.
        count(SHUTTING_DOWN.code);
        call.write({ id: req.id, result: { $case: "error", value: errorToFields(SHUTTING_DOWN) } });
        return;
      }
      s.pending++;
      if (s.pending >= MAX_PENDING && !s.paused) {
        s.paused = true;
        call.pause();
      }
      void answer(req).then((result) => {
        s.pending--;
        if (s.paused && s.pending < MAX_PENDING / 2) {
          s.paused = false;
          call.resume();
        }
        if (s.open) {
          call.write({ id: req.id, result });
          if (closing) answeredClosing++;
        }
        settle(s);
      });
    });
    call.on("end", () => {
      s.halfClosed = true;
      settle(s);
    });
    const gone = () => {
      s.open = false;
      streams.delete(s);
      if (closing && streams.size === 0) onDrained?.();
    };
    call.on("cancelled", gone);
    call.on("error", gone);
    if (closing) settle(s);
  }

  return {
    serve,
    /**
     * Takes no more submits: each stream ends (UNAVAILABLE) once what it
     * brought is answered; new messages meanwhile are refused as
     * unavailable. Resolves when every stream has ended, or after
     * `timeoutMs`: the streams still waiting for a submit then end
     * UNAVAILABLE at once (the gateway sends those submits again, under
     * their run ids, to another copy), so that a submit stuck on its
     * database cannot hold the shutdown past its grace.
     */
    close(timeoutMs: number): Promise<void> {
      closing = true;
      const taken = [...streams].reduce((n, s) => n + s.pending, 0);
      log.info({ streams: streams.size, submits: taken }, "draining SubmitRuns streams");
      const drained = new Promise<void>((resolve) => {
        onDrained = resolve;
      }).then(() => log.info({ answered: answeredClosing }, "SubmitRuns streams drained"));
      for (const s of [...streams]) settle(s);
      if (streams.size === 0) onDrained?.();
      const timer = setTimeout(() => {
        const left = [...streams];
        log.warn({ streams: left.length, submits: left.reduce((n, s) => n + s.pending, 0), timeout_ms: timeoutMs }, "SubmitRuns streams not drained in time; ending them");
        for (const s of left) {
          s.open = false;
          streams.delete(s);
          s.call.emit("error", toServiceError(SHUTTING_DOWN));
        }
        onDrained?.();
      }, timeoutMs);
      return drained.finally(() => clearTimeout(timer));
    },
  };
}

export type SubmitStreams = ReturnType<typeof createSubmitStreams>;
