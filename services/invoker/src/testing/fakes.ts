/**
 * Plain fakes of the core's ports, for unit tests (not part of the build).
 */
import { LonghaulError } from "@longhaul/shared/errors";
import type {
  CallOutcome,
  ClaimedRun,
  Clock,
  Dispatch,
  InvokerMetrics,
  RunOutcome,
  SchedulerPort,
  UpstreamPort,
  UpstreamRequest,
  UpstreamResult,
} from "../core/ports.js";

/** A clock whose time moves only when a test says so. */
export class FakeClock implements Clock {
  private t = 1_700_000_000_000;
  private timers: Array<{ at: number; fn: () => void }> = [];

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.t + Math.max(0, ms), fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((x) => x !== timer);
    };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const cancel = this.setTimer(resolve, ms);
      signal?.addEventListener(
        "abort",
        () => {
          cancel();
          resolve();
        },
        { once: true },
      );
    });
  }

  pending(): number {
    return this.timers.length;
  }

  /** Moves time forward, firing due timers in order and letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const target = this.t + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((x) => x.at <= target).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = due.at;
      due.fn();
    }
    this.t = target;
    await settle();
  }
}

/** Lets pending promise callbacks and I/O callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/** A scheduler answering from scripted functions and recording every call. */
export class FakeScheduler implements SchedulerPort {
  claims: Dispatch[] = [];
  heartbeats: Dispatch[][] = [];
  completions: Array<{ dispatch: Dispatch; outcome: RunOutcome }> = [];
  releases: Array<{ dispatch: Dispatch; reason: string }> = [];

  claimImpl: (d: Dispatch) => Promise<ClaimedRun> = async (d) => claimedRun(d);
  heartbeatImpl: (held: Dispatch[]) => Promise<{ lost: Dispatch[]; leaseSeconds: number }> = async () => ({
    lost: [],
    leaseSeconds: 30,
  });
  completeImpl: (d: Dispatch, o: RunOutcome) => Promise<{ accepted: boolean }> = async () => ({ accepted: true });
  releaseImpl: (d: Dispatch) => Promise<{ accepted: boolean }> = async () => ({ accepted: true });

  claimRun(d: Dispatch): Promise<ClaimedRun> {
    this.claims.push(d);
    return this.claimImpl(d);
  }
  /** The ended streams each heartbeat named. */
  endedNamed: string[][] = [];
  heartbeat(_id: string, held: Dispatch[], endedStreams: string[] = []) {
    this.heartbeats.push(held);
    this.endedNamed.push(endedStreams);
    return this.heartbeatImpl(held);
  }
  completeRun(dispatch: Dispatch, _id: string, outcome: RunOutcome) {
    this.completions.push({ dispatch, outcome });
    return this.completeImpl(dispatch, outcome);
  }
  releaseRun(dispatch: Dispatch, _id: string, reason: string) {
    this.releases.push({ dispatch, reason });
    return this.releaseImpl(dispatch);
  }
}

/** A claimed run with sensible defaults: deadline one hour from `now`. */
export function claimedRun(d: Dispatch, over: Partial<ClaimedRun> = {}, now = 1_700_000_000_000): ClaimedRun {
  return {
    runId: d.runId,
    attempt: d.attempt,
    project: "dev",
    app: "echo",
    url: "http://app.invalid/work?x=1",
    method: "POST",
    headers: [{ name: "content-type", value: "application/json" }],
    body: Buffer.from('{"n":1}'),
    deadline: new Date(now + 3600_000),
    leaseSeconds: 30,
    traceparent: "",
    tracestate: "",
    ...over,
  };
}

export const unavailable = () => new LonghaulError("unavailable", "scheduler down");

/**
 * An app whose answers the test controls: each call waits until the test
 * resolves it with `answer()` or its signal aborts (then `aborted`).
 */
export class FakeUpstream implements UpstreamPort {
  requests: UpstreamRequest[] = [];
  private pendingCalls = new Map<string, (r: UpstreamResult) => void>();

  call(req: UpstreamRequest): Promise<UpstreamResult> {
    this.requests.push(req);
    const runId = req.headers.find((h) => h.name === "X-Longhaul-Run-Id")?.value ?? String(this.requests.length);
    return new Promise((resolve) => {
      if (req.signal.aborted) return resolve({ kind: "aborted" });
      req.signal.addEventListener("abort", () => resolve({ kind: "aborted" }), { once: true });
      this.pendingCalls.set(runId, resolve);
    });
  }

  answer(runId: string, result: UpstreamResult): void {
    const r = this.pendingCalls.get(runId);
    if (!r) throw new Error(`no call pending for ${runId}`);
    this.pendingCalls.delete(runId);
    r(result);
  }
}

/** Metrics that only count. */
export class FakeMetrics implements InvokerMetrics {
  started = 0;
  ended: Array<{ mode: string; outcome: CallOutcome }> = [];
  claimFailures: string[] = [];
  completeFailures: string[] = [];
  callStarted(): void {
    this.started += 1;
  }
  callEnded(mode: "async" | "sync", outcome: CallOutcome): void {
    this.ended.push({ mode, outcome });
  }
  claimFailed(reason: string): void {
    this.claimFailures.push(reason);
  }
  completeFailed(reason: string): void {
    this.completeFailures.push(reason);
  }
}
