import type { ServerDuplexStream } from "@grpc/grpc-js";
import { UUID } from "@longhaul/shared/domain";
import { LonghaulError } from "@longhaul/shared/errors";
import { coalesceWrites, toServiceError } from "@longhaul/shared/grpc";
import type { Logger } from "@longhaul/shared/logger";
import { RunAttr, runContext, SpanKind, trace, traceCarrier, tracer } from "@longhaul/shared/telemetry";
import type { schedulerPb } from "@longhaul/shared/proto";
import type { AttemptRef, StartedRun } from "../../core/model.js";
import type { Handoff, HandoffSlot } from "../../core/ports.js";
import { checkStreamIds } from "./stream-ids.js";
import { claimResponse } from "./mapping.js";

type Call = ServerDuplexStream<schedulerPb.HandoffRequest, schedulerPb.HandoffResponse>;

/**
 * The run's message as a producer span in its trace (as a dispatch is): the
 * invoker's call continues under it.
 */
function traced(run: StartedRun, message: schedulerPb.ClaimRunResponse): schedulerPb.ClaimRunResponse {
  const parent = runContext(run.traceparent, run.tracestate);
  const span = tracer.startSpan(
    "run.handoff",
    {
      kind: SpanKind.PRODUCER,
      attributes: { [RunAttr.runId]: run.runId, [RunAttr.app]: run.app, [RunAttr.project]: run.project, [RunAttr.attempt]: run.attempt },
    },
    parent,
  );
  const carrier = traceCarrier(trace.setSpan(parent, span));
  span.end();
  return carrier.traceparent ? { ...message, ...carrier } : message;
}

/** Credits one stream may hold: more than any invoker's call slots would be a broken client. */
const MAX_CREDITS = 100_000;

/** One invoker's Handoff stream on this copy. */
interface Stream {
  invokerId: string;
  id: string;
  call: Call;
  /** Runs it will still take. */
  credits: number;
  /** Credits taken by submits not yet settled (sent or given back). */
  reserved: number;
  /** Open for new runs: hello handled, no stop, not closed. */
  taking: boolean;
  /** Writable: not cancelled, not ended by us. */
  open: boolean;
  stopping: boolean;
}

/**
 * The Handoff streams of this scheduler copy (SchedulerInternalService/Handoff)
 * and the core's Handoff port over them: a submit takes a credit of an
 * invoker with room, and the run started for it is written to its stream.
 */
export function createHandoffStreams(log: Logger, leaseSeconds: number) {
  const streams: Stream[] = [];
  let turn = 0;
  let closing = false;

  const endWhenSettled = (s: Stream) => {
    if (s.stopping && s.reserved === 0 && s.open) {
      s.open = false;
      s.call.end();
    }
  };
  const drop = (s: Stream) => {
    s.taking = false;
    const i = streams.indexOf(s);
    if (i >= 0) streams.splice(i, 1);
  };
  const stop = (s: Stream) => {
    s.stopping = true;
    drop(s);
    endWhenSettled(s);
  };

  const port: Handoff = {
    reserve(): HandoffSlot | undefined {
      // Round-robin over the streams with credit: the runs spread over the invokers.
      for (let i = 0; i < streams.length; i++) {
        const s = streams[(turn + i) % streams.length]!;
        if (!s.taking || s.credits <= 0) continue;
        turn = (turn + i + 1) % streams.length;
        s.credits--;
        s.reserved++;
        let settled = false;
        const settle = () => {
          if (settled) throw new LonghaulError("internal", "a handoff credit was settled twice");
          settled = true;
          s.reserved--;
        };
        return {
          invokerId: s.invokerId,
          streamId: s.id,
          send(run: StartedRun) {
            settle();
            const sent = s.open;
            if (sent) s.call.write({ run: traced(run, claimResponse(run, leaseSeconds)) });
            endWhenSettled(s);
            return sent;
          },
          cancel() {
            settle();
            if (s.taking) s.credits++;
            endWhenSettled(s);
          },
        };
      }
      return undefined;
    },
  };

  /**
   * Serves one Handoff stream. `opened` hands back what was started for the
   * invoker on the streams it names as ended and it does not hold; credits
   * count once it is done.
   */
  function serve(call: Call, opened: (invokerId: string, held: AttemptRef[], endedStreams: string[]) => Promise<unknown>): void {
    // The runs of a commit group go down together, not one system call each.
    coalesceWrites(call);
    let s: Stream | undefined;
    let early = 0;
    let failed = false;
    const fail = (code: "invalid_argument" | "unavailable", message: string) => {
      if (s) {
        drop(s);
        s.open = false;
      }
      if (failed) return;
      failed = true;
      call.emit("error", toServiceError(new LonghaulError(code, message)));
    };
    call.on("data", (req: schedulerPb.HandoffRequest) => {
      const m = req.message;
      if (!m) return fail("invalid_argument", "message: hello, credit or stop");
      if (m.$case === "hello") {
        if (s) return fail("invalid_argument", "hello: only the first message of a stream");
        if (!m.value.invokerId) return fail("invalid_argument", "hello.invoker_id: required");
        if (!UUID.test(m.value.streamId)) return fail("invalid_argument", "hello.stream_id: a UUID");
        let ended: string[];
        try {
          ended = checkStreamIds(m.value.endedStreams);
        } catch (err) {
          return fail("invalid_argument", (err as Error).message);
        }
        if (closing) return fail("unavailable", "the scheduler is shutting down");
        const stream: Stream = { invokerId: m.value.invokerId, id: m.value.streamId.toLowerCase(), call, credits: 0, reserved: 0, taking: false, open: true, stopping: false };
        s = stream;
        const held = m.value.held.map((h) => ({ runId: h.runId, attempt: h.attempt }));
        opened(stream.invokerId, held, ended).then(
          () => {
            if (!stream.open || stream.stopping) return;
            // Closed while the hello was being handled: ended now (it has nothing to send).
            if (closing) return stop(stream);
            stream.credits = Math.min(MAX_CREDITS, early);
            stream.taking = true;
            streams.push(stream);
          },
          (err: unknown) => {
            log.warn({ err, invoker: stream.invokerId }, "handoff stream not opened: repairing its runs failed");
            fail("unavailable", "the scheduler could not check the invoker's runs; open the stream again");
          },
        );
        return;
      }
      if (!s) return fail("invalid_argument", "hello: must come first");
      if (m.$case === "credit") {
        if (m.value.runs <= 0) return fail("invalid_argument", "credit.runs: must be > 0");
        if (s.taking) s.credits = Math.min(MAX_CREDITS, s.credits + m.value.runs);
        else early += m.value.runs;
        return;
      }
      stop(s);
    });
    // The invoker half-closed: as a stop.
    call.on("end", () => s && stop(s));
    const gone = () => {
      if (!s) return;
      s.open = false;
      drop(s);
    };
    call.on("cancelled", gone);
    call.on("error", gone);
  }

  return {
    port,
    serve,
    /** Takes no more runs; each stream ends once what was started for it is sent. */
    close(): void {
      closing = true;
      for (const s of [...streams]) stop(s);
    },
  };
}

export type HandoffStreams = ReturnType<typeof createHandoffStreams>;
