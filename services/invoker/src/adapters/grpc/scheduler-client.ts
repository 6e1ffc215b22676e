import { status as GrpcStatus, type ClientDuplexStream, type Metadata, type ServiceError } from "@grpc/grpc-js";
import { LonghaulError, isErrorCode } from "@longhaul/shared/errors";
import {
  ATTEMPTS_BATCHES_METADATA_KEY,
  callUnary,
  createClient,
  fromGrpcError,
  internalMetadata,
  type GrpcTls,
} from "@longhaul/shared/grpc";
import { schedulerPb } from "@longhaul/shared/proto";
import { traceCarrier } from "@longhaul/shared/telemetry";
import type { ClaimedRun, Dispatch, RunOutcome, SchedulerPort } from "../../core/ports.js";

/** A finished sync pass-through call, recorded without bodies. */
export interface SyncRunRecord {
  project: string;
  app: string;
  method: string;
  path: string;
  statusCode: number;
  errorCode: string;
  errorMessage: string;
  startedAt: Date;
  finishedAt: Date;
}

/** The scheduler as the invoker sees it: the core's port plus RecordSyncRun for sync calls. */
export interface SchedulerClient extends SchedulerPort {
  recordSyncRun(record: SyncRunRecord): Promise<string>;
  /** Opens a Handoff stream (adapters/grpc/handoff-client.ts drives it). */
  openHandoff(): HandoffDuplex;
  close(): void;
}

export type HandoffDuplex = ClientDuplexStream<schedulerPb.HandoffRequest, schedulerPb.HandoffResponse>;

/** Deadlines of each RPC (every gRPC call has one). */
export interface SchedulerDeadlines {
  claimMs: number;
  heartbeatMs: number;
  completeMs: number;
  releaseMs: number;
  recordMs: number;
}

const DEFAULT_DEADLINES: SchedulerDeadlines = {
  claimMs: 10_000,
  heartbeatMs: 10_000,
  // A body of up to 10 MiB travels with the outcome.
  completeMs: 30_000,
  releaseMs: 5_000,
  recordMs: 5_000,
};

/**
 * The request body as bytes of its own. Decoded `bytes` are a view into the
 * buffer the whole gRPC message arrived in; held for hours by the HTTP call,
 * that view would keep the entire buffer alive (memory per held call).
 */
function ownBytes(body: Uint8Array | undefined): Uint8Array {
  if (!body || body.byteLength === 0) return new Uint8Array(0);
  if (body.byteOffset === 0 && body.byteLength === body.buffer.byteLength) return body;
  // Small copies come from Node's shared pool; large ones get their own memory.
  return Buffer.from(body);
}

/**
 * Attempts streams kept open: requests alternate over them, and round-robin
 * puts each on its own scheduler copy when there are several.
 */
const ATTEMPT_STREAMS = 2;
/**
 * A stream is replaced by a new one after this many requests or this long,
 * so that streams spread over the scheduler copies, new copies included (a
 * stream stays with the copy it was opened on). The old one ends once its
 * answers arrived.
 */
const STREAM_MAX_REQUESTS = 100;
const STREAM_MAX_AGE_MS = 30_000;

/**
 * Outcomes held in one window go in one message of at most this many
 * (AttemptsRequest.more); a full window goes at once.
 */
const MAX_OUTCOMES_PER_MESSAGE = 16;
/**
 * An outcome whose body is larger than this is not held: it goes at once, in
 * a message of its own. So a message of held outcomes stays under 4 MiB, far
 * below the 16-MiB limit of a gRPC message.
 */
const MAX_HELD_BODY_BYTES = 256 * 1024;

type AttemptResult = NonNullable<schedulerPb.AttemptsResponse["result"]>;
/** One request as the caller made it: its call and its trace context, without the stream's id. */
type AttemptMessage = Pick<schedulerPb.AttemptsRequest, "call" | "traceparent" | "tracestate">;

type Duplex = ClientDuplexStream<schedulerPb.AttemptsRequest, schedulerPb.AttemptsResponse>;

interface Waiting {
  stream: Duplex;
  resolve: (result: AttemptResult) => void;
  reject: (err: LonghaulError) => void;
  timer: NodeJS.Timeout;
}

/**
 * One Attempts stream (SchedulerInternalService/Attempts): claims and
 * outcomes as messages on a stream opened once, instead of a unary call each.
 * Every request has a deadline of its own. When the stream breaks, the
 * requests still waiting fail as unavailable (the core sends them again: both
 * are safe to repeat) and the next request opens a new stream.
 */
class AttemptStream {
  private call: Duplex | undefined;
  /** The open stream's scheduler takes several requests per message (its response headers said so). */
  private batches = false;
  private sent = 0;
  private openedAt = 0;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;

  constructor(
    private readonly open: () => Duplex,
    /** The scheduler does not serve Attempts (an older copy during an upgrade). */
    private readonly onUnimplemented: () => void,
  ) {}

  /**
   * Sends each request with an id of its own and a deadline of its own: in
   * one message when the stream's scheduler takes several, else one message
   * each. The answers come back in the requests' order.
   */
  send(requests: AttemptMessage[], timeoutMs: number): Promise<AttemptResult>[] {
    if (this.call && (this.sent >= STREAM_MAX_REQUESTS || Date.now() - this.openedAt > STREAM_MAX_AGE_MS)) {
      this.call.end(); // half-closed: the scheduler ends it after its last answer
      this.call = undefined;
    }
    if (!this.call) {
      this.call = this.connect();
      this.batches = false;
      this.sent = 0;
      this.openedAt = Date.now();
    }
    const stream = this.call;
    this.sent += requests.length;
    const messages: schedulerPb.AttemptsRequest[] = [];
    const answers = requests.map((request) => {
      const id = this.nextId++;
      messages.push({ ...request, id, more: [] });
      return new Promise<AttemptResult>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.waiting.delete(id);
          reject(new LonghaulError("deadline_exceeded", `no answer from the scheduler in ${timeoutMs} ms`));
        }, timeoutMs);
        this.waiting.set(id, { stream, resolve, reject, timer });
      });
    });
    if (this.batches && messages.length > 1) stream.write({ ...messages[0]!, more: messages.slice(1) });
    else for (const message of messages) stream.write(message);
    return answers;
  }

  close(): void {
    this.call?.end();
    this.call = undefined;
    this.fail(undefined, new LonghaulError("unavailable", "the invoker is closing its scheduler client"));
  }

  private connect() {
    const stream = this.open();
    stream.on("metadata", (headers: Metadata) => {
      if (this.call === stream) this.batches = headers.get(ATTEMPTS_BATCHES_METADATA_KEY)[0] === "1";
    });
    stream.on("data", (res: schedulerPb.AttemptsResponse) => {
      const w = this.waiting.get(res.id);
      if (!w) return; // past its deadline
      this.waiting.delete(res.id);
      clearTimeout(w.timer);
      const result = res.result;
      if (!result) w.reject(new LonghaulError("internal", "empty answer on the Attempts stream"));
      else if (result.$case === "error") {
        w.reject(new LonghaulError(isErrorCode(result.value.code) ? result.value.code : "internal", result.value.message));
      } else w.resolve(result);
    });
    const broken = (err?: ServiceError) => {
      if (this.call === stream) this.call = undefined;
      if (err?.code === GrpcStatus.UNIMPLEMENTED) this.onUnimplemented();
      this.fail(stream, err ? fromGrpcError(err) : new LonghaulError("unavailable", "the scheduler ended the Attempts stream"));
    };
    stream.on("error", broken);
    stream.on("end", () => broken());
    return stream;
  }

  /** Fails the requests still waiting on `stream` (all: undefined) as unavailable. */
  private fail(stream: Duplex | undefined, err: LonghaulError): void {
    const unavailable = err.code === "unavailable" ? err : new LonghaulError("unavailable", err.message, { cause: err });
    for (const [id, w] of this.waiting) {
      if (stream && w.stream !== stream) continue;
      this.waiting.delete(id);
      clearTimeout(w.timer);
      w.reject(unavailable);
    }
  }
}

interface Held {
  request: AttemptMessage;
  resolve: (result: AttemptResult) => void;
  reject: (err: unknown) => void;
}

/**
 * Outcomes sent together while the scheduler is recording earlier ones. One
 * that comes while every outcome sent has its answer goes at once: it opens
 * the scheduler's commit window for successes (20 to 50 ms). Those that
 * come while answers are awaited (that window is most likely open) wait
 * and go together, in one message: at the end of `windowMs` after the last
 * send, or as soon as the last answer came (the window closed: waiting
 * longer would only delay them), or once 16 wait. So they mostly still make
 * the window's commit, and the scheduler wakes once for them, not once for
 * each.
 */
class OutcomeWindow {
  private held: Held[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastSent = -Infinity;
  /** Outcomes sent whose answers have not come. */
  private awaited = 0;

  constructor(
    private readonly windowMs: number,
    private readonly send: (requests: AttemptMessage[]) => Promise<AttemptResult>[],
  ) {}

  /** Sends `request` at once, or holds it (see the class); `windowMs` 0: always at once. */
  add(request: AttemptMessage, bodyBytes: number): Promise<AttemptResult> {
    const atOnce = this.windowMs === 0 || bodyBytes > MAX_HELD_BODY_BYTES || (this.awaited === 0 && this.held.length === 0);
    if (atOnce) return this.sendNow([request])[0]!;
    return new Promise<AttemptResult>((resolve, reject) => {
      this.held.push({ request, resolve, reject });
      if (this.held.length >= MAX_OUTCOMES_PER_MESSAGE) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), Math.max(0, this.lastSent + this.windowMs - performance.now()));
    });
  }

  /** Sends what is held now, in one message. */
  flush(): void {
    const held = this.takeHeld();
    if (held.length === 0) return;
    const answers = this.sendNow(held.map((h) => h.request));
    held.forEach((h, i) => void answers[i]!.then(h.resolve, h.reject));
  }

  /** Fails what is held (the client is closing). */
  fail(err: LonghaulError): void {
    for (const h of this.takeHeld()) h.reject(err);
  }

  private takeHeld(): Held[] {
    clearTimeout(this.timer);
    this.timer = undefined;
    const held = this.held;
    this.held = [];
    return held;
  }

  private sendNow(requests: AttemptMessage[]): Promise<AttemptResult>[] {
    this.lastSent = performance.now();
    this.awaited += requests.length;
    const answered = () => {
      // The last answer came: the scheduler's window has closed; what waits goes now.
      if (--this.awaited === 0) this.flush();
    };
    const answers = this.send(requests);
    for (const answer of answers) void answer.then(answered, answered);
    return answers;
  }
}

/** Upper bound of a run's call when the scheduler names no deadline (DESIGN: 12 h at most). */
const MAX_CALL_MS = 12 * 3600 * 1000;

/** An attempt the invoker owns (ClaimRun's answer, or a run a Handoff stream brought), as the core takes it. */
export function toClaimedRun(res: schedulerPb.ClaimRunResponse, dispatch?: Dispatch): ClaimedRun {
  const req = res.request;
  return {
    runId: res.runId || (dispatch?.runId ?? ""),
    attempt: res.attempt || (dispatch?.attempt ?? 0),
    project: res.project,
    app: res.app,
    url: res.url,
    method: req?.method || "GET",
    headers: req?.headers ?? [],
    body: ownBytes(req?.body),
    deadline: res.deadline ?? new Date(Date.now() + MAX_CALL_MS),
    leaseSeconds: res.leaseSeconds,
    traceparent: res.traceparent,
    tracestate: res.tracestate,
  };
}

/** Options of {@link createSchedulerClient}. */
export interface SchedulerClientOptions {
  deadlines?: Partial<SchedulerDeadlines>;
  tls?: GrpcTls;
  /**
   * Outcomes that come while earlier ones await their answers wait, up to
   * this many ms after the last send, and go together in one message
   * (OutcomeWindow). 0, the default: each goes at once.
   */
  outcomeWindowMs?: number;
}

/**
 * Talks to `longhaul.internal.v1.SchedulerInternalService` on every scheduler
 * copy at `addresses` (round-robin), over TLS when `tls` is given. Errors
 * arrive as LonghaulErrors (callUnary maps them at this border).
 */
export function createSchedulerClient(
  addresses: string,
  internalToken: string,
  { deadlines = {}, tls, outcomeWindowMs = 0 }: SchedulerClientOptions = {},
): SchedulerClient {
  // A heartbeat renews leases (fenced by attempt): sending it again to another
  // copy is harmless. Claims and outcomes have their own retries in the core.
  const client = createClient(schedulerPb.SchedulerInternalServiceClient, addresses, {
    retry: [schedulerPb.SchedulerInternalServiceService.heartbeat.path],
    tls,
  });
  const d = { ...DEFAULT_DEADLINES, ...deadlines };
  const md = () => internalMetadata(internalToken);
  // Claims and outcomes travel on Attempts streams; a scheduler without them
  // (older, mid-upgrade) gets the unary calls.
  let streamsServed = true;
  const streams = Array.from(
    { length: ATTEMPT_STREAMS },
    () => new AttemptStream(() => client.attempts(md()), () => (streamsServed = false)),
  );
  let turn = 0;
  const viaStream = (requests: AttemptMessage[], timeoutMs: number) => streams[turn++ % streams.length]!.send(requests, timeoutMs);
  const outcomes = new OutcomeWindow(outcomeWindowMs, (requests) => viaStream(requests, d.completeMs));

  async function claim(request: schedulerPb.ClaimRunRequest): Promise<schedulerPb.ClaimRunResponse> {
    if (!streamsServed) return callUnary(client.claimRun.bind(client), request, md(), d.claimMs);
    const [answer] = viaStream([{ call: { $case: "claim", value: request }, ...traceCarrier() }], d.claimMs);
    const result = await answer!;
    if (result.$case !== "claim") throw new LonghaulError("internal", `a ${result.$case} answer to a claim`);
    return result.value;
  }

  async function complete(request: schedulerPb.CompleteRunRequest): Promise<schedulerPb.CompleteRunResponse> {
    if (!streamsServed) return callUnary(client.completeRun.bind(client), request, md(), d.completeMs);
    const message = { call: { $case: "complete" as const, value: request }, ...traceCarrier() };
    const result = await outcomes.add(message, request.body.byteLength);
    if (result.$case !== "complete") throw new LonghaulError("internal", `a ${result.$case} answer to an outcome`);
    return result.value;
  }

  return {
    async claimRun(dispatch: Dispatch, invokerId: string): Promise<ClaimedRun> {
      return toClaimedRun(await claim({ runId: dispatch.runId, attempt: dispatch.attempt, invokerId }), dispatch);
    },

    async heartbeat(invokerId: string, held: Dispatch[], endedStreams: string[] = []) {
      const res = await callUnary(
        client.heartbeat.bind(client),
        { invokerId, runs: held.map((h) => ({ runId: h.runId, attempt: h.attempt })), endedStreams },
        md(),
        d.heartbeatMs,
      );
      return { lost: res.lost.map((l) => ({ runId: l.runId, attempt: l.attempt })), leaseSeconds: res.leaseSeconds };
    },

    async completeRun(dispatch: Dispatch, invokerId: string, o: RunOutcome) {
      const res = await complete({
          runId: dispatch.runId,
          attempt: dispatch.attempt,
          invokerId,
          statusCode: o.statusCode,
          headers: o.headers,
          body: Buffer.from(o.body.buffer, o.body.byteOffset, o.body.byteLength),
          bodyTruncated: o.bodyTruncated,
          errorCode: o.errorCode,
          errorMessage: o.errorMessage,
          retryAfterSeconds: o.retryAfterSeconds,
      });
      return { accepted: res.accepted };
    },

    async releaseRun(dispatch: Dispatch, invokerId: string, reason: string) {
      const res = await callUnary(
        client.releaseRun.bind(client),
        { runId: dispatch.runId, attempt: dispatch.attempt, invokerId, reason },
        md(),
        d.releaseMs,
      );
      return { accepted: res.accepted };
    },

    async recordSyncRun(r: SyncRunRecord): Promise<string> {
      const res = await callUnary(client.recordSyncRun.bind(client), r, md(), d.recordMs);
      return res.runId;
    },

    openHandoff: () => client.handoff(md()),

    close: () => {
      outcomes.fail(new LonghaulError("unavailable", "the invoker is closing its scheduler client"));
      for (const s of streams) s.close();
      client.close();
    },
  };
}
