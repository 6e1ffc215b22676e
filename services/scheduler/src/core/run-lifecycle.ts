import { LonghaulError } from "@longhaul/shared/errors";
import { context, runContext } from "@longhaul/shared/telemetry";
import type { SchedulerDeps } from "./deps.js";
import { createEffects } from "./deps.js";
import type { AppSettings, AttemptOutcome, AttemptRef, EndedRun, RunRecord, WebhookState } from "./model.js";
import type { AttemptResult } from "./ports.js";
import { decide, isSuccess, type Decision } from "./retry-policy.js";

const SUCCEEDED: Decision = { kind: "succeeded" };

/** Settings used when a run's app was deleted while the run was in flight. */
const DELETED_APP_POLICY: Omit<AppSettings, "name" | "url" | "timeoutSeconds"> = {
  maxConcurrency: 0,
  maxAttempts: 1,
  initialBackoffSeconds: 1,
  maxBackoffSeconds: 300,
  idempotent: false,
  queueTtlSeconds: 0,
};

export interface Completion extends AttemptResult {
  retryAfterSeconds: number;
}

const RUN_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The invoker-facing half of the scheduler: claims, leases, outcomes. Every
 * answer is decided in Postgres, so late and duplicate calls are harmless.
 */
export function createRunLifecycle(deps: SchedulerDeps) {
  const { store, settings, log } = deps;
  const effects = createEffects(deps);
  const random = deps.random ?? Math.random;

  const decideFor = (outcome: AttemptOutcome) => (run: RunRecord, app: AppSettings | undefined) =>
    decide(
      app ?? { ...DELETED_APP_POLICY, name: run.app, url: run.upstream_url, timeoutSeconds: run.timeout_seconds },
      run.attempt,
      run.max_attempts,
      outcome,
      random,
    );

  /** Ends an attempt and publishes what follows: a finished run, or room for queued ones. */
  async function end(runId: string, attempt: number, owner: string | null, result: Completion) {
    // A success is a success whatever the app's policy: it is ended without a
    // read (one statement, shared with concurrent completions).
    const ended =
      owner !== null && isSuccess(result)
        ? await store.endSucceeded(runId, attempt, owner, result).then((r) => r && { ...r, decision: SUCCEEDED })
        : await store.endAttempt(
            runId,
            attempt,
            owner,
            result,
            decideFor({
              statusCode: result.statusCode,
              errorCode: result.errorCode,
              errorMessage: result.errorMessage,
              retryAfterSeconds: result.retryAfterSeconds,
            }),
          );
    if (!ended) return undefined;
    return endAndPublish(ended, attempt, result);
  }

  async function endAndPublish(ended: { run: EndedRun; decision: Decision; limited: boolean }, attempt: number, result: Completion) {
    const { run, decision, limited } = ended;
    // The retry waits queued for its backoff: the reconciler starts it.
    if (decision.kind === "retry") deps.wakeReconciler?.();
    // In the run's trace even when the reconciler ended it (a lost lease):
    // the log line carries the run's trace id, the run.finished event joins it.
    await context.with(runContext(run.traceparent, run.tracestate), async () => {
      log.info({ run_id: run.id, attempt, status: run.status, decision: decision.kind, status_code: result.statusCode }, "attempt ended");
      await effects.changed(run);
    });
    // The attempt's slot is free: start what waits for it. Apps without a
    // limit never queue for a slot (their delayed runs are the tick's), so
    // they skip this transaction: the async path stays at three commits.
    if (limited) await effects.dispatched(await store.dispatchQueued(run.project_id, run.app, 50));
    return run;
  }

  /**
   * An invoker named Handoff streams it saw end (on a new stream's hello, and
   * in its heartbeats for a while after): what was started for it on them
   * and that it does not hold never reached it, so it goes back to the
   * queue, dispatched again. `held`: every attempt the invoker may have
   * called (held, or let go of without the scheduler's word).
   */
  async function returnUnreceived(invokerId: string, held: AttemptRef[], endedStreams: string[]) {
    if (endedStreams.length === 0) return 0;
    const back = await store.returnOrphans(invokerId, held, endedStreams);
    if (back.length > 0) {
      log.warn({ invoker: invokerId, runs: back.length }, "runs started for an invoker on a stream it never received them on; dispatched again");
      // A new message id: an earlier dispatch of the attempt may still be in JetStream's duplicate window.
      await effects.dispatched(back, { republish: true });
    }
    return back.length;
  }

  return {
    async claim(runId: string, attempt: number, invokerId: string) {
      const run = await store.claimRun(runId, attempt, invokerId, settings.leaseSeconds);
      if (!run) {
        throw new LonghaulError("conflict", `run ${runId} attempt ${attempt} is not waiting for an invoker`);
      }
      if (run.attempt === 1) {
        // Accept → dispatch from the row's own timestamps (dispatched_at is
        // set in the commit right before the publish, and again by a
        // republish: this is the dispatch that was taken). Retries are left
        // out: their backoff is not queueing.
        if (run.dispatched_at) deps.metrics.dispatchDelay((run.dispatched_at.getTime() - run.created_at.getTime()) / 1000);
        deps.metrics.startDelay((Date.now() - run.created_at.getTime()) / 1000);
      }
      deps.bus.publishChanged(run.project_id, run.id, run.status);
      return run;
    },

    returnUnreceived,

    async heartbeat(invokerId: string, held: { runId: string; attempt: number }[], endedStreams: string[] = []) {
      const owned = await store.renewSession(invokerId, held, settings.leaseSeconds);
      // A stream that ended may have carried runs that were committed after the
      // invoker's hello repaired it (the scheduler's side saw the end later).
      if (endedStreams.length > 0) await returnUnreceived(invokerId, held, endedStreams);
      return held.filter((h) => !owned.has(`${h.runId}:${h.attempt}`));
    },

    async complete(runId: string, attempt: number, invokerId: string, result: Completion) {
      const run = await end(runId, attempt, invokerId, result);
      if (!run) log.warn({ run_id: runId, attempt, invoker: invokerId }, "late or stale result refused");
      return run;
    },

    /** An invoker hands an attempt back unfinished (draining): as if it were lost. */
    async release(runId: string, attempt: number, invokerId: string, reason: string) {
      return end(runId, attempt, invokerId, lostResult(`invoker released the call: ${reason}`));
    },

    /** What the notifier needs to deliver a run's webhook. */
    async deliveryInput(runId: string): Promise<RunRecord> {
      const run = await store.findRun(null, runId);
      if (!run) throw new LonghaulError("not_found", `run ${runId} not found`);
      return run;
    },

    async updateWebhookState(runId: string, state: WebhookState): Promise<void> {
      const project = await store.setWebhookState(runId, state);
      if (project === undefined) throw new LonghaulError("not_found", `run ${runId} has no webhook`);
      deps.bus.publishChanged(project, runId, `webhook_${state}`);
    },

    /**
     * updateWebhookState for many runs at once (one statement); resolves with
     * the run ids that are gone, have no webhook or are no run id at all (each
     * only its own failure, never the batch's).
     */
    async updateWebhookStates(states: { runId: string; state: WebhookState }[]): Promise<string[]> {
      const found = await store.setWebhookStates(states.filter((s) => RUN_ID.test(s.runId)));
      const state = new Map(states.map((s) => [s.runId, s.state]));
      for (const r of found) deps.bus.publishChanged(r.project, r.runId, `webhook_${state.get(r.runId)}`);
      const ok = new Set(found.map((r) => r.runId));
      return [...state.keys()].filter((id) => !ok.has(id));
    },

    /** Records a finished pass-through call so it shows in listings and the dashboard. */
    async recordSync(r: {
      project: string; app: string; method: string; path: string; statusCode: number;
      errorCode: string; errorMessage: string; startedAt: Date; finishedAt: Date;
    }): Promise<string> {
      const app = await store.getApp(r.project, r.app);
      const id = await store.insertSyncRun({ ...r, upstreamUrl: app?.url ?? "" });
      const status = isSuccess(r) ? "succeeded" : "failed";
      deps.metrics.runFinished(r.app, status);
      // Project watchers (the dashboard) see pass-through calls appear too.
      deps.bus.publishChanged(r.project, id, status);
      return id;
    },

    /** Ends an attempt whose lease ran out, whoever held it. */
    async expireLease(runId: string, attempt: number) {
      return end(runId, attempt, null, lostResult("the invoker holding the call stopped renewing its lease"));
    },
  };
}

function lostResult(message: string): Completion {
  return {
    statusCode: 0,
    headers: [],
    body: null,
    bodyTruncated: false,
    // The call may have reached the app: retried only for an idempotent app.
    errorCode: "interrupted",
    errorMessage: message,
    retryAfterSeconds: 0,
  };
}

export type RunLifecycle = ReturnType<typeof createRunLifecycle>;
