import { callUnary, createClient, internalMetadata } from "@longhaul/shared/grpc";
import { schedulerPb } from "@longhaul/shared/proto";
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
  close(): void;
}

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
 * that view would keep the entire buffer alive (issue 5: memory per held call).
 */
function ownBytes(body: Uint8Array | undefined): Uint8Array {
  if (!body || body.byteLength === 0) return new Uint8Array(0);
  if (body.byteOffset === 0 && body.byteLength === body.buffer.byteLength) return body;
  // Small copies come from Node's shared pool; large ones get their own memory.
  return Buffer.from(body);
}

/** Upper bound of a run's call when the scheduler names no deadline (DESIGN: 12 h at most). */
const MAX_CALL_MS = 12 * 3600 * 1000;

/**
 * Talks to `longhaul.internal.v1.SchedulerInternalService` on every scheduler
 * copy at `addresses` (round-robin). Errors arrive as LonghaulErrors (callUnary
 * maps them at this border).
 */
export function createSchedulerClient(
  addresses: string,
  internalToken: string,
  deadlines: Partial<SchedulerDeadlines> = {},
): SchedulerClient {
  // A heartbeat renews leases (fenced by attempt): sending it again to another
  // copy is harmless. Claims and outcomes have their own retries in the core.
  const client = createClient(schedulerPb.SchedulerInternalServiceClient, addresses, {
    retry: [schedulerPb.SchedulerInternalServiceService.heartbeat.path],
  });
  const d = { ...DEFAULT_DEADLINES, ...deadlines };
  const md = () => internalMetadata(internalToken);

  return {
    async claimRun(dispatch: Dispatch, invokerId: string): Promise<ClaimedRun> {
      const res = await callUnary(
        client.claimRun.bind(client),
        { runId: dispatch.runId, attempt: dispatch.attempt, invokerId },
        md(),
        d.claimMs,
      );
      const req = res.request;
      return {
        runId: res.runId || dispatch.runId,
        attempt: res.attempt || dispatch.attempt,
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
    },

    async heartbeat(invokerId: string, held: Dispatch[]) {
      const res = await callUnary(
        client.heartbeat.bind(client),
        { invokerId, runs: held.map((h) => ({ runId: h.runId, attempt: h.attempt })) },
        md(),
        d.heartbeatMs,
      );
      return { lost: res.lost.map((l) => ({ runId: l.runId, attempt: l.attempt })), leaseSeconds: res.leaseSeconds };
    },

    async completeRun(dispatch: Dispatch, invokerId: string, o: RunOutcome) {
      const res = await callUnary(
        client.completeRun.bind(client),
        {
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
        },
        md(),
        d.completeMs,
      );
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

    close: () => client.close(),
  };
}
