import { status as GrpcStatus, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import { LonghaulError, isErrorCode } from "@longhaul/shared/errors";
import { callUnary, createClient, fromGrpcError, internalMetadata, type GrpcTls } from "@longhaul/shared/grpc";
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

type AttemptCall = NonNullable<schedulerPb.AttemptsRequest["call"]>;
type AttemptResult = NonNullable<schedulerPb.AttemptsResponse["result"]>;

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
  private sent = 0;
  private openedAt = 0;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;

  constructor(
    private readonly open: () => Duplex,
    /** The scheduler does not serve Attempts (an older copy during an upgrade). */
    private readonly onUnimplemented: () => void,
  ) {}

  send(call: AttemptCall, timeoutMs: number): Promise<AttemptResult> {
    if (this.call && (this.sent >= STREAM_MAX_REQUESTS || Date.now() - this.openedAt > STREAM_MAX_AGE_MS)) {
      this.call.end(); // half-closed: the scheduler ends it after its last answer
      this.call = undefined;
    }
    if (!this.call) {
      this.call = this.connect();
      this.sent = 0;
      this.openedAt = Date.now();
    }
    const stream = this.call;
    this.sent++;
    const id = this.nextId++;
    return new Promise<AttemptResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new LonghaulError("deadline_exceeded", `no answer from the scheduler in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { stream, resolve, reject, timer });
      stream.write({ id, call, ...traceCarrier() });
    });
  }

  close(): void {
    this.call?.end();
    this.call = undefined;
    this.fail(undefined, new LonghaulError("unavailable", "the invoker is closing its scheduler client"));
  }

  private connect() {
    const stream = this.open();
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

/**
 * Talks to `longhaul.internal.v1.SchedulerInternalService` on every scheduler
 * copy at `addresses` (round-robin), over TLS when `tls` is given. Errors
 * arrive as LonghaulErrors (callUnary maps them at this border).
 */
export function createSchedulerClient(
  addresses: string,
  internalToken: string,
  deadlines: Partial<SchedulerDeadlines> = {},
  tls?: GrpcTls,
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
  const viaStream = (call: AttemptCall, timeoutMs: number) => streams[turn++ % streams.length]!.send(call, timeoutMs);

  async function claim(request: schedulerPb.ClaimRunRequest): Promise<schedulerPb.ClaimRunResponse> {
    if (!streamsServed) return callUnary(client.claimRun.bind(client), request, md(), d.claimMs);
    const result = await viaStream({ $case: "claim", value: request }, d.claimMs);
    if (result.$case !== "claim") throw new LonghaulError("internal", `a ${result.$case} answer to a claim`);
    return result.value;
  }

  async function complete(request: schedulerPb.CompleteRunRequest): Promise<schedulerPb.CompleteRunResponse> {
    if (!streamsServed) return callUnary(client.completeRun.bind(client), request, md(), d.completeMs);
    const result = await viaStream({ $case: "complete", value: request }, d.completeMs);
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
      for (const s of streams) s.close();
      client.close();
    },
  };
}
