import { connectivityState, status as GrpcStatus, type Client, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import { LonghaulError } from "@longhaul/shared/errors";
import { errorFromFields, fromGrpcError, grpcStatusOf, transportError } from "@longhaul/shared/grpc";
import type { Logger } from "@longhaul/shared/logger";
import { runsPb, type schedulerPb } from "@longhaul/shared/proto";
import {
  ROOT_CONTEXT,
  SpanKind,
  type Attributes,
  context,
  endRpcSpan,
  streamedCallSpan,
  trace,
  traceCarrier,
  tracer,
} from "@longhaul/shared/telemetry";

/** What the streams watch of their channel. */
type Channel = Pick<ReturnType<Client["getChannel"]>, "getConnectivityState" | "watchConnectivityState">;

export type SubmitDuplex = ClientDuplexStream<schedulerPb.SubmitRunsRequest, schedulerPb.SubmitRunsResponse>;

/** Options of {@link createSubmitStreams}. */
export interface SubmitStreamsOptions {
  /** Opens a SubmitRuns stream (the internal token in its metadata). */
  open(): SubmitDuplex;
  /** The channel the streams run on: a change of its state (a GOAWAY, a lost copy) renews them. */
  channel?: Channel;
  /** Streams kept open; submits go round-robin over those that are open. */
  streams: number;
  /** Submits waiting for their answer on one stream; past it, the caller uses the unary call. @default 256 */
  maxInFlight?: number;
  /**
   * A stream is replaced by a new one after this long (the old one ends once
   * its answers arrived), so that streams follow the scheduler copies as they
   * come and go: a stream stays with the connection it was opened on.
   * @default 10_000
   */
  maxAgeMs?: number;
  /** Wait before opening a stream again after one broke. @default 200 ms doubling to 10 s */
  retry?: { initialMs: number; maxMs: number };
  log: Logger;
}

/** The gateway's SubmitRuns streams. */
export interface SubmitStreams {
  /**
   * Sends a submit on an open stream and resolves with its answer; `undefined`
   * when no stream can take it now (none open yet, all reconnecting or at
   * their bound; a body over 256 KiB): the caller makes the unary call instead, and never waits
   * for a stream. Rejects with the LonghaulError the unary call would have
   * given; `unavailable` when the stream broke before the answer (the submit
   * may have been committed: send it again with the same run id).
   */
  submit(authorization: string, req: runsPb.SubmitRunRequest, timeoutMs: number, signal?: AbortSignal): Promise<runsPb.SubmitRunResponse> | undefined;
  /** Ends every stream; submits still waiting fail as unavailable. */
  close(): void;
}

/** What the span of a submit on a stream stands for: the SubmitRun call it replaces. */
const SPAN = streamedCallSpan(runsPb.RunServiceService.submitRun.path, "SubmitRuns");

/** `server.address` and `server.port` of a peer (`host:port`, `[v6]:port`), as instrumentation-grpc sets them from its target. */
function peerAttributes(peer: string): Record<string, string | number> {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(peer);
  return m ? { "server.address": m[1]!, "server.port": Number(m[2]) } : {};
}

/**
 * A submit with a larger body goes by the unary call: on a stream, its
 * message would hold up the small submits queued behind it (one HTTP/2
 * stream is written in order), while calls are multiplexed.
 */
const MAX_STREAMED_BODY_BYTES = 256 * 1024;

/** A stream open this long counts as healthy: its successor opens without backoff. */
const STABLE_MS = 5_000;

interface Waiting {
  resolve: (res: runsPb.SubmitRunResponse) => void;
  reject: (err: LonghaulError) => void;
  timer: NodeJS.Timeout;
  span: ReturnType<typeof tracer.startSpan>;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface Stream {
  call: SubmitDuplex;
  /** The scheduler's headers arrived: the stream is up. */
  ready: boolean;
  /** Half-closed by us (replaced, or closing): takes no new submits. */
  draining: boolean;
  ended: boolean;
  openedAt: number;
  /** The scheduler copy it reached (`host:port`). */
  peer: string;
  /** Attributes of its submits' spans: the call's, and the copy reached. */
  spanAttributes: Attributes;
  /** Opened to move off a copy another stream was on already (tried once per stream). */
  respread: boolean;
  waiting: Map<number, Waiting>;
}

/** One of the streams kept open, and its successor while that one opens. */
interface Slot {
  current: Stream | undefined;
  next: Stream | undefined;
  timer: NodeJS.Timeout | undefined;
  delay: number;
  /** No successor is opened before then (the last one failed). */
  renewAfter: number;
}

/**
 * Keeps `streams` SubmitRuns streams open to the scheduler copies and sends
 * submits on them, each answer matched by id. Streams are opened at the
 * first submit (which itself goes by the unary call), reopened with backoff
 * when they break, and replaced after `maxAgeMs` or when the channel's state
 * changes (a copy sent GOAWAY at its max connection age, or went away): the
 * replacement takes submits once it is up, and the old one is half-closed
 * and finishes the answers it owes.
 */
export function createSubmitStreams(o: SubmitStreamsOptions): SubmitStreams {
  const maxInFlight = o.maxInFlight ?? 256;
  const maxAgeMs = o.maxAgeMs ?? 10_000;
  const retry = o.retry ?? { initialMs: 200, maxMs: 10_000 };
  const slots: Slot[] = Array.from({ length: o.streams }, () => ({ current: undefined, next: undefined, timer: undefined, delay: retry.initialMs, renewAfter: 0 }));
  /** Every stream not ended yet: the slots' and those finishing their answers after a replacement. */
  const live = new Set<Stream>();
  let started = false;
  let closed = false;
  let turn = 0;
  let nextId = 1;
  let unimplementedLogged = false;

  const fail = (s: Stream, err: LonghaulError) => {
    for (const [id, w] of s.waiting) {
      s.waiting.delete(id);
      settle(w);
      endRpcSpan(w.span, grpcStatusOf(err.code), err);
      w.reject(err);
    }
  };
  const settle = (w: Waiting) => {
    clearTimeout(w.timer);
    if (w.onAbort) w.signal?.removeEventListener("abort", w.onAbort);
  };

  /** Half-closes a stream: the scheduler ends it after its last answer. */
  const drain = (s: Stream) => {
    if (s.draining || s.ended) return;
    s.draining = true;
    s.call.end();
  };

  const connect = (slot: Slot, respread = false) => {
    slot.timer = undefined;
    if (closed) return;
    // Opened outside any request's trace: the stream outlives every submit on it.
    const call = context.with(ROOT_CONTEXT, () => o.open());
    const s: Stream = { call, ready: false, draining: false, ended: false, openedAt: Date.now(), peer: "", spanAttributes: SPAN.attributes, respread, waiting: new Map() };
    live.add(s);
    if (slot.current) slot.next = s;
    else slot.current = s;
    call.on("metadata", () => {
      if (s.ended) return;
      s.ready = true;
      s.openedAt = Date.now();
      s.peer = call.getPeer();
      s.spanAttributes = { ...SPAN.attributes, ...peerAttributes(s.peer) };
      if (slot.next === s) {
        // The successor is up: it takes the submits, the old stream finishes its answers.
        const old = slot.current;
        slot.current = s;
        slot.next = undefined;
        if (old) drain(old);
      }
      // Round-robin gives each new call the next copy, but another call may
      // take a turn in between and put two streams on one copy: such a stream
      // is replaced once, so that the streams spread over the copies up.
      const shared = slots.some((x) => x !== slot && x.current?.ready && x.current.peer === s.peer);
      if (shared && !s.respread && slot.current === s && !slot.next) connect(slot, true);
    });
    call.on("data", (res: schedulerPb.SubmitRunsResponse) => {
      const w = s.waiting.get(res.id);
      if (!w) return; // past its deadline, or its caller gave up
      s.waiting.delete(res.id);
      settle(w);
      const result = res.result;
      if (result?.$case === "submitted") {
        endRpcSpan(w.span, GrpcStatus.OK);
        w.resolve(result.value);
      } else {
        const err = result ? errorFromFields(result.value) : new LonghaulError("internal", "internal error", { cause: new Error("empty answer on a SubmitRuns stream") });
        // Before the caller hears of it: its next try must not pick this stream again.
        if (err.code === "unavailable") retire(slot, s);
        endRpcSpan(w.span, grpcStatusOf(err.code), err);
        w.reject(err);
      }
    });
    const ended = (err?: ServiceError) => {
      if (s.ended) return;
      s.ended = true;
      live.delete(s);
      const lived = s.ready ? Date.now() - s.openedAt : 0;
      // A copy refusing (shutting down) says so with its own code; anything else is the transport's failure, shown as a unary call's.
      const broken = err ? fromGrpcError(err) : transportError("unavailable", "the scheduler ended the submit stream");
      fail(s, broken.code === "unavailable" ? broken : transportError("unavailable", `the submit stream broke: ${broken.message}`, broken));
      if (slot.next === s) {
        // A successor that never came up: the current stream goes on; the next try waits.
        slot.next = undefined;
        slot.renewAfter = Date.now() + slot.delay;
        slot.delay = Math.min(slot.delay * 2, retry.maxMs);
        return;
      }
      if (slot.current !== s) return; // replaced already: it finished its answers
      slot.current = slot.next;
      slot.next = undefined;
      if (closed || slot.current || slot.timer) return; // slot.timer: a successor is on its way already
      if (lived > STABLE_MS) slot.delay = retry.initialMs;
      if (err?.code === GrpcStatus.UNIMPLEMENTED) {
        // An older scheduler copy: submits go by the unary call until a newer one answers.
        if (!unimplementedLogged) o.log.info("the scheduler does not serve SubmitRuns; submits go by unary calls");
        unimplementedLogged = true;
        slot.delay = retry.maxMs;
      } else if (err && err.code !== GrpcStatus.CANCELLED && err.code !== GrpcStatus.UNAVAILABLE) {
        o.log.warn({ err: err.details || err.message, retry_in_ms: slot.delay }, "submit stream broke; opening another");
      }
      slot.timer = setTimeout(() => connect(slot), slot.delay);
      slot.delay = Math.min(slot.delay * 2, retry.maxMs);
    };
    call.on("error", ended);
    call.on("status", () => ended());
    call.on("end", () => ended());
  };

  /**
   * A copy answered `unavailable` on `s`: it is shutting down (it answers
   * what it took, refuses the rest, then ends its streams). No more submits
   * go on `s`, which is half-closed and still delivers the answers it owes;
   * a successor opens through the channel, on a copy that is up, at once
   * unless `s` itself was young (a copy refusing every stream: back off).
   */
  const retire = (slot: Slot, s: Stream) => {
    if (s.draining || s.ended) return;
    drain(s);
    if (closed || slot.current !== s || slot.next || slot.timer) return;
    const young = Date.now() - s.openedAt < STABLE_MS;
    const wait = young ? slot.delay : 0;
    slot.delay = young ? Math.min(slot.delay * 2, retry.maxMs) : retry.initialMs;
    slot.timer = setTimeout(() => connect(slot), wait);
  };

  /** Replaces every open stream (its successor opens now; the old one drains once that is up). */
  const renewAll = () => {
    for (const slot of slots) if (slot.current && !slot.next && !slot.timer) connect(slot);
  };

  const watch = (channel: Channel) => {
    const state = channel.getConnectivityState(false);
    // A deadline far off: the watch is renewed after every change, until close.
    channel.watchConnectivityState(state, Date.now() + 3_600_000, () => {
      if (closed) return;
      const now = channel.getConnectivityState(false);
      // Leaving READY: a connection was told to go away, or lost. New streams
      // go over the connections that are up now, or that come next.
      if (state === connectivityState.READY && now !== connectivityState.READY) renewAll();
      watch(channel);
    });
  };

  const start = () => {
    started = true;
    for (const slot of slots) connect(slot);
    if (o.channel) watch(o.channel);
  };

  /** The next open stream with room, round-robin; replaces streams past their age on the way. */
  const pick = (): Stream | undefined => {
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[(turn + i) % slots.length]!;
      const s = slot.current;
      if (!s || !s.ready || s.draining || s.waiting.size >= maxInFlight) continue;
      if (!slot.next && Date.now() - s.openedAt > maxAgeMs && Date.now() >= slot.renewAfter) connect(slot);
      turn = (turn + i + 1) % slots.length;
      return s;
    }
    return undefined;
  };

  return {
    submit(authorization, req, timeoutMs, signal) {
      if (closed || slots.length === 0 || (req.request?.body.byteLength ?? 0) > MAX_STREAMED_BODY_BYTES) return undefined;
      if (!started) start();
      const s = pick();
      if (!s || signal?.aborted) return undefined;
      const id = nextId++;
      const span = tracer.startSpan(SPAN.name, { kind: SpanKind.CLIENT, attributes: s.spanAttributes });
      return new Promise<runsPb.SubmitRunResponse>((resolve, reject) => {
        const giveUp = (err: LonghaulError) => {
          const w = s.waiting.get(id);
          if (!w) return;
          s.waiting.delete(id);
          settle(w);
          endRpcSpan(span, grpcStatusOf(err.code), err);
          reject(err);
        };
        const w: Waiting = {
          resolve,
          reject,
          span,
          signal,
          onAbort: signal ? () => giveUp(new LonghaulError("deadline_exceeded", "the submit was cancelled by its caller")) : undefined,
          // Every submit has its deadline, as its unary call would.
          timer: setTimeout(() => giveUp(transportError("deadline_exceeded", `no answer from the scheduler in ${timeoutMs} ms`)), timeoutMs),
        };
        s.waiting.set(id, w);
        if (w.onAbort) signal?.addEventListener("abort", w.onAbort, { once: true });
        s.call.write({ id, authorization, submit: req, ...traceCarrier(trace.setSpan(context.active(), span)) });
      });
    },
    close() {
      closed = true;
      for (const slot of slots) if (slot.timer) clearTimeout(slot.timer);
      for (const s of [...live]) {
        fail(s, new LonghaulError("unavailable", "the gateway is closing its scheduler client"));
        s.call.cancel();
      }
    },
  };
}
