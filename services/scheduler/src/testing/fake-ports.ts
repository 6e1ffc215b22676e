/**
 * In-memory fakes of the scheduler core's ports, for unit tests of the core
 * (admission, retry decisions, lease expiry, reconciler steps) that need no
 * Postgres. They keep the store's contract as core/ports.ts states it, in the
 * simplest form; the real store is tested against real Postgres
 * (adapters/pg/*.test.ts) and the mesh tests. Time is `Date.now()`, so tests
 * move it with `vi.setSystemTime`.
 */
import { randomUUID } from "node:crypto";
import { LonghaulError } from "@longhaul/shared/errors";
import { createLogger } from "@longhaul/shared/logger";
import type { SchedulerDeps, SchedulerSettings } from "../core/deps.js";
import { startedRun, type AppSettings, type AttemptRecord, type DispatchRef, type RunRecord } from "../core/model.js";
import type { AttemptResult, EventBus, FinishedDelivery, NewRun, SchedulerMetrics, SchedulerStore, StartFor, StoredApp } from "../core/ports.js";
import type { Decision } from "../core/retry-policy.js";

/** An object that throws, naming the method, for every method the fake leaves out. */
function partial<T extends object>(impl: Partial<T>, what: string): T {
  return new Proxy(impl, {
    get(target, prop, receiver) {
      if (prop in target || typeof prop === "symbol" || prop === "then") return Reflect.get(target, prop, receiver) as unknown;
      return () => {
        throw new Error(`${what}.${prop} is not in the fake`);
      };
    },
  }) as T;
}

export type FakeStore = SchedulerStore & {
  runs: Map<string, RunRecord>;
  attempts: AttemptRecord[];
  /** Each invoker's session: when its lease on every run it holds ends (ms). */
  sessions: Map<string, number>;
  /** Make the named method throw `err` from now on. */
  fail(method: keyof SchedulerStore, err: Error): void;
};

export function createFakeStore(): FakeStore {
  const apps = new Map<string, StoredApp>();
  const runs = new Map<string, RunRecord>();
  const attempts: AttemptRecord[] = [];
  const sessions = new Map<string, number>();
  const idempotency = new Map<string, { runId: string; hash: string }>();
  const failing = new Map<string, Error>();
  /** The Handoff stream each handed-off attempt was started on (`id:attempt`). */
  const streamOf = new Map<string, string>();

  const now = () => Date.now();
  const check = (method: string) => {
    const err = failing.get(method);
    if (err) throw err;
  };
  const appOf = (run: RunRecord) => apps.get(`${run.project_id}/${run.app}`);
  const ref = (run: RunRecord): DispatchRef => ({ runId: run.id, attempt: run.attempt, project: run.project_id, app: run.app, traceparent: run.traceparent });
  const inFlight = (project: string, app: string) =>
    [...runs.values()].filter((r) => r.project_id === project && r.app === app && (r.status === "dispatched" || r.status === "running")).length;
  /** Past its own start deadline: it never starts (the claim refuses it, the reconciler expires it). */
  const lapsed = (r: RunRecord) => r.expires_at !== null && r.expires_at.getTime() <= now();
  const waiting = (r: RunRecord) => r.status === "queued" || r.status === "dispatched";
  /** A queued first attempt past its app's queue TTL. */
  const overAppTtl = (r: RunRecord) => {
    const ttl = appOf(r)?.queueTtlSeconds ?? 0;
    return r.status === "queued" && r.attempt === 1 && ttl > 0 && r.created_at.getTime() < now() - ttl * 1000;
  };
  const expirable = (r: RunRecord) => (waiting(r) && lapsed(r)) || overAppTtl(r);
  const due = (r: RunRecord) => r.status === "queued" && (r.not_before === null || r.not_before.getTime() <= now()) && !lapsed(r);
  const leaseLost = (r: RunRecord) => r.status === "running" && r.owner !== null && (sessions.get(r.owner) ?? 0) < now();

  /** Dispatches queued runs of one app, oldest first, as far as its limit and pause allow. */
  const dispatch = (project: string, appName: string, batch: number): DispatchRef[] => {
    const app = apps.get(`${project}/${appName}`);
    if (!app || app.paused) return [];
    const room = app.maxConcurrency > 0 ? Math.max(0, app.maxConcurrency - inFlight(project, appName)) : batch;
    const refs: DispatchRef[] = [];
    for (const r of runs.values()) {
      if (refs.length >= Math.min(room, batch)) break;
      if (r.project_id !== project || r.app !== appName || !due(r)) continue;
      r.status = "dispatched";
      r.dispatched_at = new Date();
      refs.push(ref(r));
    }
    return refs;
  };

  const finish = (run: RunRecord, attempt: number, result: AttemptResult, decision: Decision) => {
    const a = attempts.find((x) => x.run_id === run.id && x.attempt === attempt);
    if (a) Object.assign(a, { finished_at: new Date(), status_code: result.statusCode || null, error_code: result.errorCode || null, error_message: result.errorMessage || null });
    run.owner = null;
    run.lease_expires_at = null;
    run.status_code = result.statusCode || null;
    run.response_headers = result.headers;
    run.response_body = result.body;
    run.response_truncated = result.bodyTruncated;
    if (decision.kind === "retry") {
      run.status = "queued";
      run.attempt += 1;
      run.not_before = new Date(now() + decision.delaySeconds * 1000);
      run.error_code = decision.errorCode;
      run.error_message = decision.errorMessage;
      return;
    }
    run.status = decision.kind === "succeeded" ? "succeeded" : decision.status;
    run.error_code = decision.kind === "succeeded" ? null : decision.errorCode;
    run.error_message = decision.kind === "succeeded" ? null : decision.errorMessage;
    run.finished_at = new Date();
    if (run.webhook_url) run.webhook_state = "pending";
  };

  /** The run's attempt if `owner` (or, for null, an expired lease) still holds it. */
  const held = (runId: string, attempt: number, owner: string | null) => {
    const run = runs.get(runId);
    if (!run || run.status !== "running" || run.attempt !== attempt) return undefined;
    if (owner === null ? !leaseLost(run) : run.owner !== owner) return undefined;
    return run;
  };

  const store: Partial<SchedulerStore> = {
    async upsertApp(project, app) {
      const key = `${project}/${app.name}`;
      const created = !apps.has(key);
      const stored = { ...app, createdAt: apps.get(key)?.createdAt ?? new Date(), updatedAt: new Date() };
      apps.set(key, stored);
      return { app: stored, created };
    },
    async getApp(project, name) {
      return apps.get(`${project}/${name}`);
    },
    async submitRun(project, appName, build, runId, startFor) {
      check("submitRun");
      const app = apps.get(`${project}/${appName}`);
      if (!app) throw new LonghaulError("not_found", `app ${appName} not found`);
      return insert(build(app), runId, startFor);
    },
    async returnRuns(invokerId, returned) {
      return handBack(invokerId, (r) => returned.some((x) => x.runId === r.id && x.attempt === r.attempt));
    },
    async returnOrphans(invokerId, heldRuns, endedStreams) {
      const onEnded = (r: RunRecord) => attempts.some((a) => a.run_id === r.id && a.attempt === r.attempt && a.invoker_id === invokerId && endedStreams.includes(streamOf.get(`${r.id}:${r.attempt}`) ?? ""));
      return handBack(invokerId, (r) => onEnded(r) && !heldRuns.some((h) => h.runId === r.id && h.attempt === r.attempt));
    },
    async findRun(project, id) {
      const run = runs.get(id);
      return run && (project === null || run.project_id === project) ? ({ ...run }) : undefined;
    },
    async findRuns(project, ids) {
      return [...runs.values()]
        .filter((r) => r.project_id === project && ids.includes(r.id))
        .sort((a, b) => a.created_at.getTime() - b.created_at.getTime())
        .map((r) => ({ ...r, request_body: null, response_body: null }));
    },
    async findAttempts(runId) {
      return attempts.filter((a) => a.run_id === runId);
    },
    async claimRun(runId, attempt, invokerId, leaseSeconds) {
      const run = runs.get(runId);
      if (!run || run.status !== "dispatched" || run.attempt !== attempt || lapsed(run)) return undefined;
      sessions.set(invokerId, now() + leaseSeconds * 1000);
      Object.assign(run, { status: "running", owner: invokerId, started_at: run.started_at ?? new Date() });
      attempts.push({ run_id: runId, attempt, invoker_id: invokerId, started_at: new Date(), finished_at: null, status_code: null, error_code: null, error_message: null });
      return ({ ...run });
    },
    async renewSession(invokerId, heldRuns, leaseSeconds) {
      sessions.set(invokerId, now() + leaseSeconds * 1000);
      const owned = new Set<string>();
      for (const h of heldRuns) if (held(h.runId, h.attempt, invokerId)) owned.add(`${h.runId}:${h.attempt}`);
      return owned;
    },
    async endAttempt(runId, attempt, owner, result, decideFor) {
      const run = held(runId, attempt, owner);
      if (!run) return undefined;
      const app = appOf(run);
      const decision = decideFor(({ ...run }), app);
      finish(run, attempt, result, decision);
      return { run: ({ ...run }), decision, limited: (app?.maxConcurrency ?? 0) > 0 };
    },
    async endSucceeded(runId, attempt, owner, result) {
      const run = held(runId, attempt, owner);
      if (!run) return undefined;
      finish(run, attempt, result, { kind: "succeeded" });
      return { run: ({ ...run }), limited: (appOf(run)?.maxConcurrency ?? 0) > 0 };
    },
    async appsWithDueRuns(limit) {
      const seen = new Map<string, { project: string; app: string }>();
      for (const r of runs.values()) if (due(r)) seen.set(`${r.project_id}/${r.app}`, { project: r.project_id, app: r.app });
      return [...seen.values()].slice(0, limit);
    },
    async dispatchQueued(project, app, batch) {
      return dispatch(project, app, batch);
    },
    async dueWork() {
      check("dueWork");
      const values = [...runs.values()];
      const times = values.flatMap((r) => [
        ...(r.status === "queued" && r.not_before && r.not_before.getTime() > now() ? [r.not_before.getTime()] : []),
        ...(waiting(r) && r.expires_at && r.expires_at.getTime() > now() ? [r.expires_at.getTime()] : []),
      ]);
      const nextDueAt = times.length > 0 ? new Date(Math.min(...times)) : null;
      return { expire: values.some(expirable), leases: values.some(leaseLost), queued: values.some(due), redispatch: false, webhooks: false, nextDueAt };
    },
    async expireQueued() {
      const ended = [...runs.values()].filter(expirable);
      for (const r of ended) {
        Object.assign(r, {
          status: "expired",
          finished_at: new Date(),
          error_code: "queue_ttl_exceeded",
          error_message: lapsed(r) ? "not started within the run's own queue_ttl_seconds" : "waited in the queue past the app's queue_ttl_seconds",
          webhook_state: r.webhook_url ? "pending" : "none",
        });
      }
      return ended.map((r) => ({ id: r.id, project: r.project_id, app: r.app, webhook: r.webhook_url !== null }));
    },
    async expiredLeases(limit) {
      check("expiredLeases");
      return [...runs.values()].filter(leaseLost).slice(0, limit).map((r) => ({ id: r.id, attempt: r.attempt }));
    },
    async staleDispatches() {
      return [];
    },
    async untakenWebhooks() {
      return [];
    },
    async retentionDue() {
      return { bodies: false, runs: false, sessions: false };
    },
    async dropOldBodies() {
      return { runs: 0, moved: false };
    },
    async deleteOldRuns() {
      return 0;
    },
    async eraseRun() {
      return undefined;
    },
    async dropIdleSessions() {
      return 0;
    },
  };

  /** Running attempts of `invokerId` that `pick` names, back to dispatched, their attempt records dropped. */
  function handBack(invokerId: string, pick: (r: RunRecord) => boolean): DispatchRef[] {
    const back = [...runs.values()].filter((r) => r.status === "running" && r.owner === invokerId && pick(r));
    for (const r of back) {
      Object.assign(r, { status: "dispatched", owner: null, lease_expires_at: null, dispatched_at: new Date(), started_at: r.attempt === 1 ? null : r.started_at });
      attempts.splice(attempts.findIndex((a) => a.run_id === r.id && a.attempt === r.attempt), 1);
    }
    return back.map(ref);
  }

  function insert(n: NewRun, chosenId?: string, startFor?: StartFor) {
    if (n.idempotencyKey) {
      const seen = idempotency.get(`${n.project}/${n.app.name}/${n.idempotencyKey}`);
      if (seen && seen.hash !== n.requestHash) throw new LonghaulError("unprocessable", "Idempotency-Key was used with a different request");
      if (seen) return { runId: seen.runId, existing: true, dispatch: null, started: null };
    }
    const queued = [...runs.values()].filter((r) => r.project_id === n.project && r.app === n.app.name && r.status === "queued").length;
    if (n.maxQueuedPerApp > 0 && queued >= n.maxQueuedPerApp) {
      throw new LonghaulError("resource_exhausted", `app ${n.app.name} has ${queued} runs queued, its limit`);
    }
    const id = chosenId ?? randomUUID();
    const run: RunRecord = {
      id,
      project_id: n.project,
      app: n.app.name,
      mode: n.mode,
      status: "queued",
      method: n.method,
      path: n.path,
      query: n.query,
      upstream_url: n.app.url,
      request_headers: n.headers,
      request_body: n.body,
      webhook_url: n.webhookUrl,
      webhook_state: "none",
      priority: n.priority,
      timeout_seconds: n.timeoutSeconds,
      max_attempts: n.app.maxAttempts,
      attempt: 1,
      idempotency_key: n.idempotencyKey,
      retry_of: n.retryOf,
      not_before: n.notBefore,
      expires_at: n.expiresAt,
      created_at: new Date(),
      dispatched_at: null,
      started_at: null,
      finished_at: null,
      owner: null,
      lease_expires_at: null,
      status_code: null,
      response_headers: null,
      response_body: null,
      response_truncated: false,
      error_code: null,
      error_message: null,
      traceparent: n.traceparent,
      tracestate: n.tracestate,
      labels: n.labels,
    };
    runs.set(id, run);
    if (n.idempotencyKey) idempotency.set(`${n.project}/${n.app.name}/${n.idempotencyKey}`, { runId: id, hash: n.requestHash });
    const [dispatched] = dispatch(n.project, n.app.name, 1).filter((d) => d.runId === id);
    // Another run of the app may have taken the slot; this one waits queued then.
    if (!dispatched && run.status === "dispatched") run.status = "queued";
    // As the real store: only an unlimited app's plain submit is started at once for an invoker.
    if (dispatched && startFor && n.app.maxConcurrency === 0 && !n.idempotencyKey && !n.notBefore) {
      sessions.set(startFor.invokerId, Math.max(sessions.get(startFor.invokerId) ?? 0, now() + startFor.leaseSeconds * 1000));
      Object.assign(run, { status: "running", owner: startFor.invokerId, started_at: new Date() });
      attempts.push({ run_id: id, attempt: 1, invoker_id: startFor.invokerId, started_at: new Date(), finished_at: null, status_code: null, error_code: null, error_message: null });
      streamOf.set(`${id}:1`, startFor.streamId);
      return { runId: id, existing: false, dispatch: null, started: startedRun(run) };
    }
    return { runId: id, existing: false, dispatch: dispatched ?? null, started: null };
  }

  return Object.assign(partial<SchedulerStore>(store, "store"), {
    runs,
    attempts,
    sessions,
    fail(method: keyof SchedulerStore, err: Error) {
      failing.set(method, err);
    },
  });
}

/** What the core published, in order. */
export interface FakeBus extends EventBus {
  dispatched: DispatchRef[];
  finished: { id: string; status: string; delivery?: FinishedDelivery | undefined }[];
  changed: { project: string; runId: string; status: string }[];
  cancelled: string[];
  connected: boolean;
}

export function createFakeBus(): FakeBus {
  const bus: FakeBus = {
    dispatched: [],
    finished: [],
    changed: [],
    cancelled: [],
    connected: true,
    async publishDispatch(refs) {
      bus.dispatched.push(...refs);
    },
    async publishFinished(run) {
      bus.finished.push({ id: run.id, status: run.status, delivery: run.delivery });
    },
    publishCancel(runId) {
      bus.cancelled.push(runId);
    },
    publishChanged(project, runId, status) {
      bus.changed.push({ project, runId, status });
    },
    watchChanges: () => () => undefined,
    watchProject: () => () => undefined,
    watchesReady: () => Promise.resolve(),
    isConnected: () => bus.connected,
  };
  return bus;
}

export function createFakeMetrics(): SchedulerMetrics & { accepted: string[]; finished: string[]; watchReads: string[] } {
  const m = {
    accepted: [] as string[],
    finished: [] as string[],
    watchReads: [] as string[],
    watchRead: (watch: string) => void m.watchReads.push(watch),
    runAccepted: (app: string) => void m.accepted.push(app),
    runFinished: (app: string, status: string) => void m.finished.push(`${app}:${status}`),
    dispatchDelay: () => undefined,
    startDelay: () => undefined,
  };
  return m;
}

export const TEST_SETTINGS: SchedulerSettings = {
  leaseSeconds: 15,
  maxRequestBytes: 1024 * 1024,
  allowPrivateWebhooks: true,
  maxQueuedPerApp: 100,
  idempotencyTtlSeconds: 86_400,
  redispatchAfterSeconds: 30,
  webhookRepublishAfterSeconds: 60,
  retentionSeconds: 7 * 86_400,
  runRetentionSeconds: 30 * 86_400,
  retentionIntervalMs: 300_000,
  authCacheMs: 0,
};

/** The core's deps over the fakes; `wakes` counts wakeReconciler calls. */
export function createFakeDeps(settings: Partial<SchedulerSettings> = {}) {
  const store = createFakeStore();
  const bus = createFakeBus();
  const metrics = createFakeMetrics();
  const wakes = { count: 0 };
  const deps: SchedulerDeps = {
    store,
    bus,
    metrics,
    settings: { ...TEST_SETTINGS, ...settings },
    log: createLogger("scheduler-test", "silent"),
    // Backoff without jitter: the delay is the policy's own.
    random: () => 0.5,
    wakeReconciler: () => {
      wakes.count += 1;
    },
  };
  return { deps, store, bus, metrics, wakes };
}

/** An app as normaliseApp would store it, with these settings changed. */
export function testApp(name: string, over: Partial<AppSettings> = {}): AppSettings {
  return {
    name,
    url: "http://127.0.0.1:9/app",
    timeoutSeconds: 3600,
    maxConcurrency: 0,
    maxAttempts: 1,
    initialBackoffSeconds: 1,
    maxBackoffSeconds: 300,
    idempotent: false,
    queueTtlSeconds: 0,
    ...over,
  };
}
