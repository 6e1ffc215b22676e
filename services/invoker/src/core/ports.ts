/**
 * Ports of the invoker's core: what it needs from the scheduler, the app's
 * HTTP endpoint, time and metrics. Adapters implement them; tests fake them.
 * Errors thrown by ports are LonghaulErrors (codes decide what happens next).
 */
import { sleep } from "@longhaul/shared/timers";

/** One header as stored or received; names may repeat. */
export interface HeaderPair {
  name: string;
  value: string;
}

/** One attempt of a run, as handed out by a dispatch message. */
export interface Dispatch {
  runId: string;
  attempt: number;
}

/** What ClaimRun hands the owner of an attempt. */
export interface ClaimedRun {
  runId: string;
  attempt: number;
  project: string;
  app: string;
  url: string;
  method: string;
  headers: HeaderPair[];
  body: Uint8Array;
  /** The call must end by then. */
  deadline: Date;
  leaseSeconds: number;
  traceparent: string;
  tracestate: string;
}

/** The outcome of an attempt reported to the scheduler. */
export interface RunOutcome {
  statusCode: number;
  headers: HeaderPair[];
  body: Uint8Array;
  bodyTruncated: boolean;
  /** "" on an HTTP answer; else `connect_error`, `interrupted` or `timeout`. */
  errorCode: string;
  errorMessage: string;
  retryAfterSeconds: number;
}

/** The scheduler's internal RPCs, each with its own deadline inside the adapter. */
export interface SchedulerPort {
  /** Throws `conflict` / `not_found` when the attempt is not claimable. */
  claimRun(dispatch: Dispatch, invokerId: string): Promise<ClaimedRun>;
  /** `endedStreams`: Handoff streams that ended, whose unreceived runs the scheduler hands back (see HeartbeatLoop). */
  heartbeat(invokerId: string, held: Dispatch[], endedStreams?: string[]): Promise<{ lost: Dispatch[]; leaseSeconds: number }>;
  /** `accepted = false`: a late or stale outcome the scheduler refused. */
  completeRun(dispatch: Dispatch, invokerId: string, outcome: RunOutcome): Promise<{ accepted: boolean }>;
  releaseRun(dispatch: Dispatch, invokerId: string, reason: string): Promise<{ accepted: boolean }>;
}

/** A call to an app. */
export interface UpstreamRequest {
  url: string;
  method: string;
  headers: HeaderPair[];
  body: Uint8Array;
  /** Aborting it closes the connection to the app. */
  signal: AbortSignal;
}

/** How a call to an app ended, seen from the wire. */
export type UpstreamResult =
  | {
      kind: "response";
      statusCode: number;
      headers: HeaderPair[];
      body: Uint8Array;
      bodyTruncated: boolean;
    }
  /** No connection was ever made (DNS, TCP refused, TLS): the app cannot have seen the request. */
  | { kind: "connect_error"; message: string }
  /** The connection broke after it was open (reset, closed mid-answer): the app may have taken the request. */
  | { kind: "interrupted"; message: string }
  /** The request's signal fired; its reason says why. */
  | { kind: "aborted" };

/** Makes the plain synchronous call to an app and reads its answer. */
export interface UpstreamPort {
  call(request: UpstreamRequest): Promise<UpstreamResult>;
}

/** Time, so that tests can drive deadlines and backoff. */
export interface Clock {
  now(): number;
  /** Runs `fn` after `ms`; the returned function cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
  /** Resolves after `ms`, or at once when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Why an attempt ended, as counted in `longhaul_invoker_calls_total{outcome}`. */
export type CallOutcome =
  | "succeeded"
  | "app_error"
  | "connect_error"
  | "interrupted"
  | "timeout"
  | "cancelled"
  | "lost"
  | "released";

/** The invoker's metrics, seen from the core. */
export interface InvokerMetrics {
  callStarted(mode: "async" | "sync"): void;
  callEnded(mode: "async" | "sync", outcome: CallOutcome, seconds: number): void;
  claimFailed(reason: string): void;
  completeFailed(reason: string): void;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    // setTimeout overflows past 2^31-1 ms (~24.8 days); deadlines are ≤ 12 h.
    const t = setTimeout(fn, Math.min(Math.max(0, ms), 2_147_483_647));
    return () => clearTimeout(t);
  },
  sleep,
};
