import pLimit, { type LimitFunction } from "p-limit";
import { LonghaulError } from "@longhaul/shared/errors";
import type { Logger } from "@longhaul/shared/logger";
import { RunAttr, SpanKind, SpanStatusCode, context, runContext, trace, tracer, type Span } from "@longhaul/shared/telemetry";
import type { Capacity } from "./capacity.js";
import { runCallHeaders } from "./outbound-headers.js";
import type {
  CallOutcome,
  ClaimedRun,
  Clock,
  Dispatch,
  InvokerMetrics,
  RunOutcome,
  SchedulerPort,
  UpstreamPort,
  UpstreamResult,
} from "./ports.js";
import { parseRetryAfter } from "./retry-after.js";
import { Deadlines } from "./deadlines.js";

/** Why a held call was stopped before the app answered. */
export type StopReason = "timeout" | "cancelled" | "lost" | "draining";

/** What the dispatch consumer does with a message after the claim. */
export type ClaimDecision =
  /** Ack the message, then call `start()` to hold the call. */
  | { kind: "claimed"; run: ClaimedRun; start(): void }
  /** The scheduler refused the attempt (taken, cancelled, finished, stale): ack and drop. */
  | { kind: "refused"; reason: string }
  /** The scheduler could not answer: redeliver later. */
  | { kind: "retry"; reason: string };

export interface RunInvokerOptions {
  invokerId: string;
  scheduler: SchedulerPort;
  upstream: UpstreamPort;
  capacity: Capacity;
  clock: Clock;
  metrics: InvokerMetrics;
  log: Logger;
  /** Backoff of CompleteRun retries while the scheduler is unavailable. @default 250 ms doubling to 10 s */
  completeBackoff?: { initialMs: number; maxMs: number };
  /**
   * CompleteRun / ReleaseRun calls in flight at once (INVOKER_MAX_CONCURRENT_REPORTS).
   * When thousands of held calls end together (the app answers them all, a
   * drain), the rest wait here rather than all racing their deadlines at the
   * scheduler. @default 256
   */
  maxConcurrentReports?: number;
}

/**
 * One attempt held here. Kept small on purpose (16,000 held calls
 * in one process): one AbortController at a time, and only while there is
 * something to abort.
 */
interface HeldRun {
  dispatch: Dispatch;
  /**
   * Set once when the run is let go (cancelled, lost or drained): the
   * scheduler has decided, or will, so no outcome is reported. The deadline
   * is not a let-go: it ends only the call, whose outcome (timeout) is reported.
   */
  stopped: StopReason | undefined;
  /** Aborts what the run waits on now: its call, then a pause between CompleteRun retries. */
  abort: AbortController | undefined;
  done: Promise<void>;
}

const EMPTY_BODY = new Uint8Array(0);
/** Attempts remembered as let go of without the scheduler's word. */
const UNSETTLED_MAX = 10_000;

/** Error codes after which retrying CompleteRun may succeed. */
const TRANSIENT = new Set(["unavailable", "deadline_exceeded", "internal", "resource_exhausted"]);

/**
 * The heart of the invoker: claims attempts, holds their calls to the app up
 * to the run's deadline, reports outcomes, and stops calls on cancel, lost
 * lease or drain. Ownership lives in the scheduler (Postgres); this only
 * tracks what this process holds.
 */
export class RunInvoker {
  private readonly held = new Map<string, HeldRun>();
  /** Claims sent and not answered yet: the scheduler may have made them ours. */
  private readonly claiming = new Map<string, Dispatch>();
  /**
   * Attempts let go of while the scheduler may still count them ours (an
   * outcome it refused with an error, a release that failed): their calls
   * may have reached the app, so they are never handed back. Past
   * UNSETTLED_MAX the oldest are forgotten and `unsettledOverflow` is set:
   * ownedRuns() can no longer vouch for what we never received.
   */
  private readonly unsettled = new Map<string, Dispatch>();
  private unsettledOverflow = false;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly reports: LimitFunction;
  private readonly deadlines: Deadlines;
  private leaseSecondsSeen = 0;

  constructor(private readonly o: RunInvokerOptions) {
    this.backoff = o.completeBackoff ?? { initialMs: 250, maxMs: 10_000 };
    this.reports = pLimit(o.maxConcurrentReports ?? 256);
    this.deadlines = new Deadlines(o.clock);
  }

  /** The attempts held now (calls running or outcomes not yet recorded), for heartbeats. */
  heldRuns(): Dispatch[] {
    return [...this.held.values()].map((h) => h.dispatch);
  }

  /**
   * Every attempt the scheduler may count as this process's with a call that
   * may have been made: held, being claimed, or let go of without its word.
   * The scheduler hands back what was started for us on an ended Handoff
   * stream and is not named here. Undefined once too many were let go of to
   * remember them all: then nothing is ever handed back.
   */
  ownedRuns(): Dispatch[] | undefined {
    if (this.unsettledOverflow) return undefined;
    return [...this.heldRuns(), ...this.claiming.values(), ...this.unsettled.values()];
  }

  /** Lease length the last claim reported, 0 before any. */
  leaseSeconds(): number {
    return this.leaseSecondsSeen;
  }

  /** Claims one dispatched attempt. A slot is taken until the run is let go. */
  async claim(dispatch: Dispatch): Promise<ClaimDecision> {
    const { log } = this.o;
    if (this.held.has(dispatch.runId) || this.claiming.has(dispatch.runId)) {
      // A redelivery of what we already hold or claim (the ack was lost, or a
      // republish): nothing to do. Two claims of one run would both succeed
      // (a claim by the owner is answered again) and call it twice.
      return { kind: "refused", reason: "already held here" };
    }
    const release = this.o.capacity.acquire();
    let run: ClaimedRun;
    this.claiming.set(dispatch.runId, dispatch);
    try {
      run = await this.o.scheduler.claimRun(dispatch, this.o.invokerId);
    } catch (err) {
      this.claiming.delete(dispatch.runId);
      release();
      const e = LonghaulError.from(err);
      this.o.metrics.claimFailed(e.code);
      if (e.code === "conflict" || e.code === "not_found" || e.code === "invalid_argument") {
        log.info({ run_id: dispatch.runId, attempt: dispatch.attempt, code: e.code, reason: e.message }, "claim refused; dropping dispatch");
        return { kind: "refused", reason: e.message };
      }
      log.warn({ run_id: dispatch.runId, attempt: dispatch.attempt, err: e }, "claim failed; dispatch will be redelivered");
      return { kind: "retry", reason: e.message };
    }
    this.claiming.delete(dispatch.runId);
    return { kind: "claimed", run, start: this.own(run, release) };
  }

  /**
   * Takes a run a Handoff stream brought: started for this invoker in its
   * submit's commit, as after a claim. `release` frees the call slot its
   * credit kept. False (and the slot freed) when it is held here already.
   */
  take(run: ClaimedRun, release: () => void): boolean {
    if (this.held.has(run.runId)) {
      release();
      return false;
    }
    this.own(run, release)();
    return true;
  }

  /** Makes `run` held here; the returned function starts its call (once). */
  private own(run: ClaimedRun, release: () => void): () => void {
    const { log } = this.o;
    if (run.leaseSeconds > 0) this.leaseSecondsSeen = run.leaseSeconds;
    const dispatch = { runId: run.runId, attempt: run.attempt };
    const held: HeldRun = { dispatch, stopped: undefined, abort: undefined, done: Promise.resolve() };
    this.held.set(dispatch.runId, held);
    let started = false;
    return () => {
      if (started) return;
      started = true;
      const letGoOf = () => {
        if (this.held.get(run.runId) === held) this.held.delete(run.runId);
        release();
      };
      // One then() rather than catch().finally(): a promise fewer per held call.
      held.done = this.hold(run, held).then(letGoOf, (err: unknown) => {
        log.error({ err, run_id: run.runId }, "run handling failed");
        letGoOf();
      });
    };
  }

  /** Aborts a held call because its run was cancelled. True when it was held here. */
  cancel(runId: string): boolean {
    const h = this.held.get(runId);
    if (!h) return false;
    this.o.log.info({ run_id: runId, attempt: h.dispatch.attempt }, "cancel received; aborting call");
    letGo(h, "cancelled");
    return true;
  }

  /** Aborts the calls of attempts the scheduler says this invoker no longer owns. */
  abortLost(lost: Dispatch[]): void {
    for (const d of lost) {
      const h = this.held.get(d.runId);
      if (!h || h.dispatch.attempt !== d.attempt) continue;
      this.o.log.warn({ run_id: d.runId, attempt: d.attempt }, "lease lost; aborting call");
      letGo(h, "lost");
    }
  }

  /**
   * Waits up to `graceMs` for held runs to finish on their own (a deploy never
   * cuts a call: INVOKER_DRAIN_SECONDS defaults to 12 hours, the longest a run
   * may take), saying every minute how many are left, then aborts the rest
   * and hands each back with ReleaseRun (reason `invoker_draining`).
   */
  async drain(graceMs: number, progressEveryMs = 60_000): Promise<void> {
    const all = () => Promise.all([...this.held.values()].map((h) => h.done));
    const deadline = this.o.clock.now() + graceMs;
    const done = all().then(() => true);
    this.o.log.info({ held: this.held.size, drain_seconds: graceMs / 1000 }, "draining: calls held run to their end; no new dispatches taken");
    for (;;) {
      const left = deadline - this.o.clock.now();
      if (left <= 0) break;
      const timeout = new AbortController();
      const finished = await Promise.race([done, this.o.clock.sleep(Math.min(left, progressEveryMs), timeout.signal).then(() => false)]);
      timeout.abort();
      if (finished) return;
      if (deadline - this.o.clock.now() > 0) this.o.log.info({ held: this.held.size }, "draining: calls still held");
    }
    this.o.log.warn({ held: this.held.size }, "drain time is up; releasing the calls still held");
    for (const h of this.held.values()) letGo(h, "draining");
    await all();
  }

  /** The run's call inside its `run.call` span, then the report of its outcome. Not async: see callApp. */
  private hold(run: ClaimedRun, held: HeldRun): Promise<void> {
    // Under the dispatch when it carried this run's trace, else under the
    // run's stored context: either way in the run's one trace.
    const parent = runContext(run.traceparent, run.tracestate);
    // `run.call` is a client span for the whole hold: it ends when
    // the app answers or the call is stopped; reporting the outcome follows
    // beside it, in the parent's context.
    const span = tracer.startSpan(
      "run.call",
      {
        kind: SpanKind.CLIENT,
        attributes: { [RunAttr.runId]: run.runId, [RunAttr.attempt]: run.attempt, [RunAttr.app]: run.app, [RunAttr.project]: run.project },
      },
      parent,
    );
    let calling: Promise<(() => Promise<void>) | undefined>;
    try {
      calling = context.with(trace.setSpan(parent, span), () => this.callApp(run, held, span));
    } catch (err) {
      span.end();
      return Promise.reject(err);
    }
    return calling.then(
      (report) => {
        span.end();
        return report ? context.with(parent, report) : undefined;
      },
      (err: unknown) => {
        span.end();
        throw err;
      },
    );
  }

  /**
   * Starts the call to the app; resolves, once it ended, with what reports
   * its outcome (CompleteRun or ReleaseRun), if anything does. Not an async
   * function on purpose: one suspended for the whole hold would keep its
   * frame, generator and await closures alive per held call (memory
   * per held call); a pending promise with one reaction is all this keeps.
   */
  private callApp(run: ClaimedRun, held: HeldRun, span: Span): Promise<(() => Promise<void>) | undefined> {
    const { clock, metrics, log } = this.o;
    const call = new AbortController();
    held.abort = call;
    if (held.stopped) call.abort(held.stopped);
    const startedAt = clock.now();
    this.deadlines.add(call, run.deadline.getTime());
    metrics.callStarted("async");
    // One info line per run per service: the outcome line below.
    if (log.isLevelEnabled("debug")) {
      log.debug(
        { run_id: run.runId, attempt: run.attempt, method: run.method, url: run.url, deadline: run.deadline.toISOString() },
        "calling app",
      );
    }
    let request: Promise<UpstreamResult>;
    try {
      request = this.o.upstream.call({
        url: run.url,
        method: run.method,
        headers: runCallHeaders(run.headers, run.runId, run.attempt),
        body: run.body,
        signal: call.signal,
      });
    } catch (err) {
      request = Promise.reject(err);
    }
    // The HTTP client has its own copy now: the stored request is not kept for the hold.
    run.headers = [];
    run.body = EMPTY_BODY;
    const ended = (result: UpstreamResult) => {
      this.deadlines.forget(call);
      held.abort = undefined;
      return this.callEnded(run, held, span, call.signal, startedAt, result);
    };
    return request.then(ended, (err: unknown) => {
      // The adapter maps wire errors itself; anything else still ends the attempt.
      log.error({ run_id: run.runId, attempt: run.attempt, err }, "upstream call threw");
      // Whether the request reached the app is unknown: count it as sent.
      return ended(call.signal.aborted ? { kind: "aborted" } : { kind: "interrupted", message: String(err) });
    });
  }

  /** Counts and logs how a call ended; returns what reports its outcome, if anything does. */
  private callEnded(
    run: ClaimedRun,
    held: HeldRun,
    span: Span,
    signal: AbortSignal,
    startedAt: number,
    result: UpstreamResult,
  ): (() => Promise<void>) | undefined {
    const { clock, metrics, log } = this.o;
    const ids = { run_id: run.runId, attempt: run.attempt };
    const seconds = (clock.now() - startedAt) / 1000;
    const reason = signal.aborted ? (signal.reason as StopReason) : undefined;

    let outcome: RunOutcome;
    let callOutcome: CallOutcome;
    if (result.kind === "aborted") {
      if (reason === "timeout" || reason === undefined) {
        outcome = errorOutcome("timeout", `no answer before the run's deadline ${run.deadline.toISOString()}`);
        callOutcome = "timeout";
      } else {
        callOutcome = reason === "draining" ? "released" : reason;
        metrics.callEnded("async", callOutcome, seconds);
        span.setAttributes({ "longhaul.stopped": callOutcome, [RunAttr.outcome]: callOutcome });
        log.info({ ...ids, reason, seconds }, "call stopped before the app answered");
        return reason === "draining" ? () => this.release(run) : undefined;
      }
    } else if (result.kind === "connect_error" || result.kind === "interrupted") {
      outcome = errorOutcome(result.kind, result.message);
      callOutcome = result.kind;
    } else {
      const retryAfter = result.headers.find((h) => h.name.toLowerCase() === "retry-after")?.value;
      outcome = {
        statusCode: result.statusCode,
        headers: result.headers,
        body: result.body,
        bodyTruncated: result.bodyTruncated,
        errorCode: "",
        errorMessage: "",
        retryAfterSeconds: parseRetryAfter(retryAfter, clock.now()),
      };
      callOutcome = result.statusCode >= 200 && result.statusCode < 300 ? "succeeded" : "app_error";
      span.setAttribute("http.response.status_code", result.statusCode);
    }
    metrics.callEnded("async", callOutcome, seconds);
    span.setAttribute(RunAttr.outcome, callOutcome);
    if (callOutcome !== "succeeded") span.setStatus({ code: SpanStatusCode.ERROR, message: callOutcome });
    const ended = { outcome: callOutcome, status_code: outcome.statusCode, error_code: outcome.errorCode, body_truncated: outcome.bodyTruncated, seconds };
    log.debug({ ...ids, ...ended }, "call ended");
    return () => this.complete(run, held, outcome, ended);
  }

  /** Reports an outcome, retrying with backoff while the scheduler cannot answer. */
  private async complete(run: ClaimedRun, held: HeldRun, outcome: RunOutcome, ended: Record<string, unknown> = {}): Promise<void> {
    const { log, clock } = this.o;
    const ids = { run_id: run.runId, attempt: run.attempt, ...ended };
    let delay = this.backoff.initialMs;
    for (;;) {
      // One report at a time per slot; a run let go while it waited for one is not reported.
      const step = held.stopped ? "stopped" : await this.reports(() => this.tryComplete(held, outcome, ids, delay));
      if (step === "stopped") {
        // Lost or cancelled meanwhile: the scheduler already decided. Draining: hand it back.
        log.warn({ ...ids, reason: held.stopped }, "outcome not recorded: run let go while retrying");
        if (held.stopped === "draining") await this.release(run);
        return;
      }
      if (step === "done") return;
      // Only a run that waits to retry gets a controller for its pause: cancel or drain cut it short.
      const pause = new AbortController();
      held.abort = pause;
      if (!held.stopped) await clock.sleep(delay, pause.signal);
      held.abort = undefined;
      delay = Math.min(delay * 2, this.backoff.maxMs);
    }
  }

  /** One try at reporting an outcome: done (recorded, refused or dropped), to retry, or let go meanwhile. */
  private async tryComplete(held: HeldRun, outcome: RunOutcome, ids: Record<string, unknown>, delay: number): Promise<"done" | "retry" | "stopped"> {
    const { log, metrics } = this.o;
    if (held.stopped) return "stopped";
    try {
      const { accepted } = await this.o.scheduler.completeRun(held.dispatch, this.o.invokerId, outcome);
      if (accepted) log.info(ids, "outcome recorded");
      else log.warn(ids, "outcome refused as late or stale; dropped");
      return "done";
    } catch (err) {
      const e = LonghaulError.from(err);
      metrics.completeFailed(e.code);
      if (!TRANSIENT.has(e.code)) {
        this.settleLater(held.dispatch);
        log.error({ ...ids, err: e }, "outcome refused; dropped");
        return "done";
      }
      log.warn({ ...ids, err: e, retry_in_ms: delay }, "could not record outcome; retrying");
      return "retry";
    }
  }

  /** Remembers an attempt let go of without the scheduler's word (see `unsettled`). */
  private settleLater(d: Dispatch): void {
    this.unsettled.delete(d.runId);
    this.unsettled.set(d.runId, d);
    if (this.unsettled.size > UNSETTLED_MAX) {
      this.unsettled.delete(this.unsettled.keys().next().value!);
      this.unsettledOverflow = true;
    }
  }

  private async release(run: ClaimedRun): Promise<void> {
    await this.reports(() => this.releaseNow(run));
  }

  private async releaseNow(run: ClaimedRun): Promise<void> {
    try {
      const { accepted } = await this.o.scheduler.releaseRun(
        { runId: run.runId, attempt: run.attempt },
        this.o.invokerId,
        "invoker_draining",
      );
      this.o.log.info({ run_id: run.runId, attempt: run.attempt, accepted }, "run released");
    } catch (err) {
      // The lease then runs out and the scheduler recovers the run by policy.
      this.settleLater({ runId: run.runId, attempt: run.attempt });
      this.o.log.warn({ run_id: run.runId, attempt: run.attempt, err }, "release failed; the lease will expire");
    }
  }
}

/** Lets a held run go (once): marks why, and aborts what it waits on now. */
function letGo(h: HeldRun, reason: StopReason): void {
  if (h.stopped) return;
  h.stopped = reason;
  h.abort?.abort(reason);
}

function errorOutcome(errorCode: string, errorMessage: string): RunOutcome {
  return {
    statusCode: 0,
    headers: [],
    body: new Uint8Array(0),
    bodyTruncated: false,
    errorCode,
    errorMessage,
    retryAfterSeconds: 0,
  };
}
