import { createHash } from "node:crypto";
import { LonghaulError } from "@longhaul/shared/errors";
import type { SchedulerDeps } from "./deps.js";
import { createEffects } from "./deps.js";
import { isTerminal, RUN_STATUSES, type AppSettings, type AttemptRecord, type RunRecord, type StartedRun } from "./model.js";
import type { HandoffSlot, NewRun, SubmitOutcome } from "./ports.js";
import { checkStatsQuery } from "./run-stats.js";
import { createProjectWatchers, type WatchRunsOutput, type WatchRunsQuery } from "./runs-watch.js";
import { createRunWatchers } from "./run-watchers.js";
import { checkLabels, UUID } from "@longhaul/shared/domain";
import { checkName, checkRetryQuery, checkSubmit, idPrefixRange, normaliseApp, type AppInput, type RetryQuery, type SubmitInput } from "./validation.js";

const MAX_WAIT_SECONDS = 60;
const MAX_LIST_LIMIT = 500;
/** Queued runs dispatched at once when an app is resumed; the reconciler takes the rest. */
const RESUME_DISPATCH_BATCH = 200;
/** Past this many unacknowledged dispatches, a submit waits for its own. */
const MAX_UNACKED_DISPATCHES = 1_000;

/** The filters of a listing; empty strings, zeros and undefined filter nothing. */
export interface ListQuery {
  app: string;
  status: string;
  createdAfter: Date | undefined;
  createdBefore?: Date | undefined;
  statusCodeMin?: number;
  statusCodeMax?: number;
  idPrefix?: string;
  labels?: Record<string, string>;
  limit: number;
  cursor: string;
}

export interface RunView {
  run: RunRecord;
  attempts: AttemptRecord[];
}

function notFound(id: string): LonghaulError {
  return new LonghaulError("not_found", `run ${id} not found`);
}


function checkRunId(id: string): string {
  // Anything that is not a uuid cannot name a run: 404, as for an unknown one.
  if (!UUID.test(id)) throw notFound(id);
  return id.toLowerCase();
}

/** Cursor of a listing: the last (created_at, id) seen, opaque to clients. */
export function encodeCursor(run: { created_at: Date; id: string }): string {
  return Buffer.from(`${run.created_at.toISOString()}|${run.id}`).toString("base64url");
}

export function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [at, id] = Buffer.from(cursor, "base64url").toString().split("|");
  const createdAt = new Date(at ?? "");
  if (!id || !UUID.test(id) || Number.isNaN(createdAt.getTime())) {
    throw new LonghaulError("invalid_argument", "cursor: not a cursor returned by this API");
  }
  return { createdAt, id };
}

function requestHash(input: SubmitInput): string {
  const h = createHash("sha256");
  for (const part of [input.app, input.method, input.path, input.query, input.webhookUrl]) h.update(part).update("\0");
  return h.update(input.body).digest("hex");
}

/**
 * The client-facing half of the scheduler: apps, submits, reads, cancel,
 * retry, watch. Every call is scoped to the caller's project.
 */
export function createRunRegistry(deps: SchedulerDeps) {
  const { store, bus, settings, log } = deps;
  const effects = createEffects(deps);
  /** Dispatches of new runs published and not yet acknowledged. */
  let unacked = 0;

  async function view(project: string, id: string): Promise<RunView> {
    const run = await store.findRun(project, checkRunId(id));
    if (!run) throw notFound(id);
    return { run, attempts: await store.findAttempts(run.id) };
  }

  /** The run as a watcher sees it: without its bodies (a watch never sends them). */
  async function watchView(project: string, id: string): Promise<RunView> {
    const [run] = await store.findRuns(project, [id]);
    if (!run) throw notFound(id);
    return { run, attempts: await store.findAttempts(run.id) };
  }

  // Every watch of one run in this process shares its subscription and its reads (core/run-watchers.ts).
  const watchers = createRunWatchers<RunView>({
    bus,
    read: watchView,
    isFinal: (v) => isTerminal(v.run.status),
    onRead: () => deps.metrics.watchRead("run"),
    onLostError: (err) => log.warn({ err }, "a watched run could not be read; its watchers wait for the next read"),
  });
  // And every watch of one project shares its subscription and its reads (core/runs-watch.ts).
  const projectWatchers = createProjectWatchers(deps);

  async function withCounts(project: string, apps: Awaited<ReturnType<typeof store.listApps>>) {
    const counts = await store.appCounts(project);
    return apps.map((a) => {
      const c = counts.find((x) => x.app === a.name);
      return { ...a, queued: c?.queued ?? 0, inFlight: c?.inFlight ?? 0 };
    });
  }

  async function retryOne(project: string, id: string, trace: { traceparent: string; tracestate: string }, idempotencyKey: string, queueTtlSeconds = 0) {
    const { run } = await view(project, id);
    if (run.mode !== "async" || run.request_body === null) {
      throw new LonghaulError("conflict", `run ${id} has no stored request to retry (sync call, or past retention)`);
    }
    return submit(
      project,
      {
        app: run.app,
        method: run.method,
        path: run.path,
        query: run.query,
        headers: run.request_headers,
        body: run.request_body,
        webhookUrl: run.webhook_url ?? "",
        timeoutSeconds: 0,
        priority: run.priority,
        idempotencyKey,
        notBefore: undefined,
        // A retry is a new run: the first one's deadline (likely past) is not
        // carried over; the caller may give it one of its own.
        queueTtlSeconds,
        labels: run.labels,
      },
      trace,
      run.id,
    );
  }

  /**
   * A run stored started for `slot`'s invoker: sent down its stream. When the
   * stream closed first the run never left, so it goes back to the queue and
   * is dispatched as any other. Never throws: the run is committed and the
   * submit answered as accepted whatever happens here (a failed hand-back is
   * repaired by the invoker's next hello or heartbeat).
   */
  async function handedOff(slot: HandoffSlot, run: StartedRun): Promise<void> {
    deps.metrics.dispatchDelay(0);
    deps.metrics.startDelay(0);
    if (slot.send(run)) {
      bus.publishChanged(run.project, run.runId, "running");
      return;
    }
    log.info({ run_id: run.runId, invoker: slot.invokerId }, "invoker stream closed before its run was sent; dispatching it");
    try {
      const back = await store.returnRuns(slot.invokerId, [{ runId: run.runId, attempt: run.attempt }]);
      await effects.dispatched(back, { republish: true });
    } catch (err) {
      log.warn({ err, run_id: run.runId, invoker: slot.invokerId }, "a run its invoker never received could not be handed back yet");
    }
  }

  async function submit(project: string, input: SubmitInput, trace: { traceparent: string; tracestate: string }, retryOf: string | null = null) {
    checkName("app", input.app);
    if (input.runId && !UUID.test(input.runId)) throw new LonghaulError("invalid_argument", "run_id: must be a UUID");
    if (!bus.isConnected()) throw new LonghaulError("unavailable", "the event broker is unreachable; try again", { retryAfterSeconds: 2 });
    // Validated against the app inside the store's transaction: a refusal stores nothing.
    const build = (app: AppSettings): NewRun => {
      const checked = checkSubmit(input, app, {
        maxRequestBytes: settings.maxRequestBytes,
        allowPrivateWebhooks: settings.allowPrivateWebhooks,
        now: new Date(),
      });
      return {
        project,
        app,
        mode: "async",
        method: input.method,
        path: input.path,
        query: input.query,
        headers: input.headers,
        body: input.body,
        webhookUrl: input.webhookUrl || null,
        priority: input.priority,
        idempotencyKey: input.idempotencyKey || null,
        // Only a keyed submit is compared with an earlier one.
        requestHash: input.idempotencyKey ? requestHash(input) : "",
        notBefore: input.notBefore ?? null,
        expiresAt: checked.expiresAt,
        retryOf,
        traceparent: trace.traceparent,
        tracestate: trace.tracestate,
        labels: input.labels,
        maxQueuedPerApp: settings.maxQueuedPerApp,
        idempotencyTtlSeconds: settings.idempotencyTtlSeconds,
        timeoutSeconds: checked.timeoutSeconds,
      };
    };
    // An invoker with a credit on this copy gets the run in the submit's own
    // commit (no dispatch, no claim); the credit goes back when the run was
    // not started for it (a limit, a key, a delay, a resent submit).
    const slot = deps.handoff?.reserve();
    let result: SubmitOutcome;
    try {
      const startFor = slot && { invokerId: slot.invokerId, leaseSeconds: settings.leaseSeconds, streamId: slot.streamId };
      result = await store.submitRun(project, input.app, build, input.runId ? input.runId.toLowerCase() : undefined, startFor);
    } catch (err) {
      slot?.cancel();
      throw err;
    }
    if (slot && !result.started) slot.cancel();
    if (slot && result.started) await handedOff(slot, result.started);
    if (!result.existing) {
      deps.metrics.runAccepted(input.app);
      // Debug: the one info line per run is the attempt's end (run-lifecycle).
      log.debug({ run_id: result.runId, app: input.app, project, dispatched: result.dispatch !== null }, "run accepted");
    }
    if (result.dispatch) {
      // The run is committed: the answer need not wait for JetStream to
      // acknowledge its dispatch (a lost publish is republished by the
      // reconciler after SCHEDULER_REDISPATCH_AFTER_SECONDS), unless too many
      // acknowledgements are outstanding (a slow broker slows submits down).
      unacked++;
      const published = effects.dispatched([result.dispatch]).finally(() => unacked--);
      if (unacked > MAX_UNACKED_DISPATCHES) await published;
      else void published;
    }
    // A new run that waits: project watchers still see it appear.
    else if (!result.existing && !result.started) {
      bus.publishChanged(project, result.runId, "queued");
      // A delayed run, or one with a deadline: the reconciler learns when it
      // is due or expires (it sleeps till the earliest of them).
      if (input.notBefore || input.queueTtlSeconds) deps.wakeReconciler?.();
    }
    return { runId: result.runId, existing: result.existing };
  }

  return {
    async putApp(project: string, input: AppInput) {
      const app = normaliseApp(input);
      const { app: stored, created } = await store.upsertApp(project, app);
      const [withCount] = await withCounts(project, [stored]);
      return { app: withCount!, created };
    },

    async getApp(project: string, name: string) {
      checkName("name", name);
      const app = await store.getApp(project, name);
      if (!app) throw new LonghaulError("not_found", `app ${name} not found`);
      return (await withCounts(project, [app]))[0]!;
    },

    async listApps(project: string) {
      return withCounts(project, await store.listApps(project));
    },

    async deleteApp(project: string, name: string) {
      checkName("name", name);
      if (!(await store.deleteApp(project, name))) throw new LonghaulError("not_found", `app ${name} not found`);
    },

    /** Holds an app's queue: runs are accepted and wait; calls in flight go on. */
    async pauseApp(project: string, name: string) {
      checkName("name", name);
      const app = await store.setAppPaused(project, name, true);
      if (!app) throw new LonghaulError("not_found", `app ${name} not found`);
      log.info({ project, app: name }, "app paused");
      return (await withCounts(project, [app]))[0]!;
    },

    /** Releases an app's queue, dispatching what its limits allow at once. */
    async resumeApp(project: string, name: string) {
      checkName("name", name);
      const app = await store.setAppPaused(project, name, false);
      if (!app) throw new LonghaulError("not_found", `app ${name} not found`);
      log.info({ project, app: name }, "app resumed");
      await effects.dispatched(await store.dispatchQueued(project, name, RESUME_DISPATCH_BATCH));
      return (await withCounts(project, [app]))[0]!;
    },

    submit: (project: string, input: SubmitInput, trace: { traceparent: string; tracestate: string }) => submit(project, input, trace),

    getRun: view,

    /** Long-polls until the run is finished or `waitSeconds` pass. */
    async waitRun(project: string, id: string, waitSeconds: number, signal: AbortSignal): Promise<RunView> {
      if (waitSeconds < 0 || waitSeconds > MAX_WAIT_SECONDS) {
        throw new LonghaulError("invalid_argument", `wait_seconds: must be from 0 to ${MAX_WAIT_SECONDS}`);
      }
      const follower = watchers.follow(project, checkRunId(id));
      try {
        let current = await follower.first();
        const deadline = Date.now() + waitSeconds * 1000;
        while (!isTerminal(current.view.run.status) && Date.now() < deadline && !signal.aborted) {
          current = await follower.next(current, deadline - Date.now(), signal);
        }
        return current.view;
      } finally {
        follower.close();
      }
    },

    async listRuns(project: string, q: ListQuery) {
      if (q.app) checkName("app", q.app);
      if (q.status && !RUN_STATUSES.includes(q.status as never)) {
        throw new LonghaulError("invalid_argument", `status: one of ${RUN_STATUSES.join(", ")}`);
      }
      if (q.limit < 0 || q.limit > MAX_LIST_LIMIT) throw new LonghaulError("invalid_argument", `limit: from 1 to ${MAX_LIST_LIMIT}`);
      const codes = q.statusCodeMin || q.statusCodeMax ? { min: q.statusCodeMin ?? 0, max: q.statusCodeMax ?? 0 } : undefined;
      if (codes && !(Number.isInteger(codes.min) && Number.isInteger(codes.max) && codes.min >= 100 && codes.min <= codes.max && codes.max <= 599)) {
        throw new LonghaulError("invalid_argument", "status_code: min and max from 100 to 599, min at most max");
      }
      if (q.labels) checkLabels(q.labels, "labels");
      const limit = q.limit || 50;
      const runs = await store.listRuns({
        project,
        app: q.app || undefined,
        status: q.status || undefined,
        createdAfter: q.createdAfter,
        createdBefore: q.createdBefore,
        statusCode: codes,
        idRange: q.idPrefix ? idPrefixRange(q.idPrefix) : undefined,
        labels: q.labels,
        limit: limit + 1,
        after: q.cursor ? decodeCursor(q.cursor) : undefined,
      });
      const page = runs.slice(0, limit);
      const last = page[page.length - 1];
      return { runs: page, nextCursor: runs.length > limit && last ? encodeCursor(last) : "" };
    },

    async cancel(project: string, id: string): Promise<RunRecord> {
      const res = await store.cancelRun(project, checkRunId(id));
      if (!res) throw notFound(id);
      if (!res.cancelled) throw new LonghaulError("conflict", `run ${id} has already finished (${res.run.status})`);
      // The invoker holding the call aborts it; its late result will be refused.
      if (res.previousOwner) bus.publishCancel(res.run.id);
      log.info({ run_id: res.run.id, held_by: res.previousOwner }, "run cancelled");
      await effects.changed(res.run);
      await effects.dispatched(await store.dispatchQueued(project, res.run.app, 50));
      return res.run;
    },

    /**
     * Erases a finished run's bodies and headers (personal data), recorded
     * in the audit log as `actor`'s. 409 while the run has not finished.
     */
    async erase(project: string, id: string, actor: string): Promise<RunRecord> {
      const res = await store.eraseRun(project, checkRunId(id), actor);
      if (!res) throw notFound(id);
      if (!res.erased) throw new LonghaulError("conflict", `run ${id} is ${res.run.status}: only a finished run can be erased`);
      log.info({ run_id: id, actor }, "run's bodies and headers erased");
      return res.run;
    },

    /** A new run with the request of an earlier one, linked to it. */
    retry: (project: string, id: string, trace: { traceparent: string; tracestate: string }, queueTtlSeconds = 0) =>
      retryOne(project, id, trace, "", queueTtlSeconds),

    /**
     * Retries every finished run matching `q` never retried before, oldest
     * first, at most `limit`. Each retry carries the Idempotency-Key
     * `bulk-retry:<run id>`, so two bulk retries racing over the same runs make
     * one new run each. A run that cannot be retried (its app deleted, its
     * request past retention) is skipped; a refusal over a limit stops the
     * batch (`more`: call again later).
     */
    async retryRuns(project: string, q: RetryQuery, trace: { traceparent: string; tracestate: string }) {
      const filter = checkRetryQuery(project, q);
      const ids = await store.findRetryable({ ...filter, limit: filter.limit + 1 });
      let more = ids.length > filter.limit;
      const runIds: string[] = [];
      for (const id of ids.slice(0, filter.limit)) {
        try {
          runIds.push((await retryOne(project, id, trace, `bulk-retry:${id}`)).runId);
        } catch (err) {
          const code = err instanceof LonghaulError ? err.code : "internal";
          if (code === "not_found" || code === "conflict" || code === "invalid_argument" || code === "unprocessable") {
            log.warn({ run_id: id, err }, "bulk retry skipped a run");
            continue;
          }
          if (runIds.length === 0) throw err;
          log.warn({ run_id: id, err, retried: runIds.length }, "bulk retry stopped early");
          more = true;
          break;
        }
      }
      log.info({ project, retried: runIds.length, more }, "bulk retry");
      return { retried: runIds.length, runIds, more };
    },

    /** The overview's figures over a window (`1h`, `24h`, `7d`), for one app or all, one mode or both. */
    async stats(project: string, raw: { window: string; app: string; mode: string }) {
      if (raw.app) checkName("app", raw.app);
      const { window, query } = checkStatsQuery(project, raw);
      const result = await store.runStats(query, new Date());
      if (!result.appExists) throw new LonghaulError("not_found", `app ${raw.app} not found`);
      return { window, bucketSeconds: query.bucketSeconds, ...result };
    },

    /** Sends the project's runs as they change, until `signal` aborts (core/runs-watch.ts). */
    watchRuns: (project: string, query: WatchRunsQuery, signal: AbortSignal, out: WatchRunsOutput) =>
      projectWatchers.watch(project, query, signal, out),

    /** Sends the run now and at each change until it is finished. */
    async watch(project: string, id: string, signal: AbortSignal, send: (v: RunView) => void): Promise<void> {
      const follower = watchers.follow(project, checkRunId(id));
      try {
        let current = await follower.first();
        send(current.view);
        let lastKey = stateKey(current.view);
        while (!isTerminal(current.view.run.status) && !signal.aborted) {
          current = await follower.next(current, Number.POSITIVE_INFINITY, signal);
          const key = stateKey(current.view);
          if (key !== lastKey) send(current.view);
          lastKey = key;
        }
      } finally {
        follower.close();
      }
    },

    /** Runs watched in this process and their watchers, and project watches (gauges). */
    watchStats: () => ({ ...watchers.stats(), projectWatchers: projectWatchers.stats().watchers }),
  };
}

function stateKey(v: RunView): string {
  return `${v.run.status}|${v.run.attempt}|${v.run.webhook_state}|${v.attempts.length}|${v.attempts.at(-1)?.finished_at?.getTime() ?? ""}`;
}

export type RunRegistry = ReturnType<typeof createRunRegistry>;
