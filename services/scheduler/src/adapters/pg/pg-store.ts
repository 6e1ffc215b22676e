import type { Kysely } from "kysely";
import pLimit from "p-limit";
import type { SchedulerStore, TenancyStore } from "../../core/ports.js";
import * as apps from "./app-store.js";
import { batchedClaim, batchedInsert, batchedSuccess, batchedWebhookState } from "./batched.js";
import * as maintenance from "./maintenance-store.js";
import * as claims from "./claim-run.js";
import * as ends from "./end-attempt.js";
import * as inserts from "./insert-run.js";
import * as retention from "./retention.js";
import * as runs from "./run-queries.js";
import * as stats from "./run-stats.js";
import * as tenancy from "./tenancy-store.js";
import type { SchedulerDb } from "./schema.js";
import type { SubmitSettingsCache } from "./submit-settings.js";

/** Tunables of {@link createPgStore}. */
export interface PgStoreOptions {
  /** How long a submit close after another waits to share its commit (SCHEDULER_SUBMIT_WINDOW_MS; batchedInsert). @default 0 */
  submitWindowMs?: number;
  /** How long a successful completion close after another waits to share its commit (SCHEDULER_END_WINDOW_MS; batchedSuccess). @default 0 */
  endWindowMs?: number;
  /** How long such a window stays open in all while it holds few ends (SCHEDULER_END_WINDOW_MAX_MS; batchedSuccess). @default endWindowMs */
  endWindowMaxMs?: number;
  /**
   * Writes of one run each, in a transaction of their own (an attempt that
   * did not succeed, a release), on pool connections at once; the rest wait
   * their turn here. Successes share one statement per batch; these do not,
   * so a burst of them (thousands of held calls failing or handed back
   * together) would otherwise take every connection and leave heartbeats and
   * submits waiting. Below SCHEDULER_DB_POOL_SIZE. @default 16
   */
  perRunWrites?: number;
}

/**
 * The scheduler's store on Postgres: the repositories bound to one database.
 * `settings`: the submit settings cache; every change of an app goes through
 * it (createPgTenancyStore takes the same one for projects' limits).
 */
export function createPgStore(db: Kysely<SchedulerDb>, settings: SubmitSettingsCache, options: PgStoreOptions = {}): SchedulerStore {
  /** The rollup's progress as last seen: a planner hint for stats reads (it only grows). */
  let rolledHint: Date | undefined;
  // The hot path's writes, each as a group commit (batched.ts).
  const insert = batchedInsert(db, options.submitWindowMs);
  const claim = batchedClaim(db);
  const succeed = batchedSuccess(db, options.endWindowMs, options.endWindowMaxMs);
  const webhookState = batchedWebhookState(db);
  const perRun = pLimit(options.perRunWrites ?? 16);
  return {
    projectOfKey: (key) => apps.projectOfKey(db, key),
    upsertApp: (project, app) => afterChange(settings, project, apps.upsertApp(db, project, app)),
    getApp: (project, name) => apps.getApp(db, project, name),
    listApps: (project) => apps.listApps(db, project),
    deleteApp: (project, name) => afterChange(settings, project, apps.deleteApp(db, project, name)),
    setAppPaused: (project, name, paused) => afterChange(settings, project, apps.setAppPaused(db, project, name, paused)),
    findRetryable: (filter) => runs.findRetryable(db, filter),
    appCounts: (project) => maintenance.appCounts(db, project),
    insertRun: (run) => inserts.insertRun(db, run),
    submitRun: (project, app, build, runId, startFor) => inserts.submitRun(db, insert, settings.get, project, app, build, runId, startFor),
    returnRuns: async (invokerId, returned) => (await perRun(() => claims.returnRuns(db, invokerId, returned))).map(dispatchRef),
    returnOrphans: async (invokerId, held, ended) => (await perRun(() => claims.returnOrphans(db, invokerId, held, ended))).map(dispatchRef),
    insertSyncRun: (r) => runs.insertSyncRun(db, r),
    findRun: (project, id) => runs.findRun(db, project, id),
    findAttempts: (runId) => runs.findAttempts(db, runId),
    listRuns: (filter) => runs.listRuns(db, filter),
    findRuns: (project, ids) => runs.findRuns(db, project, ids),
    claimRun: (runId, attempt, invokerId, leaseSeconds) => claim({ runId, attempt, invokerId, leaseSeconds }),
    renewSession: (invokerId, held, lease) => claims.renewSession(db, invokerId, held, lease),
    endAttempt: (runId, attempt, owner, result, decideFor) => perRun(() => ends.endAttempt(db, runId, attempt, owner, result, decideFor)),
    endSucceeded: (runId, attempt, owner, result) => succeed({ runId, attempt, owner, result }),
    cancelRun: (project, runId) => ends.cancelRun(db, project, runId),
    setWebhookState: (runId, state) => webhookState({ runId, state }),
    // Many states in one call: the group commit above makes them one statement.
    setWebhookStates: async (states) => {
      const projects = await Promise.all(states.map((s) => webhookState(s)));
      return states.flatMap((s, i) => (projects[i] === undefined ? [] : [{ runId: s.runId, project: projects[i] }]));
    },
    appsWithDueRuns: (limit) => maintenance.appsWithDueRuns(db, limit),
    dispatchQueued: (project, app, batch) => maintenance.dispatchQueued(db, project, app, batch),
    expireQueued: () => maintenance.expireQueued(db),
    expiredLeases: (limit) => maintenance.expiredLeases(db, limit),
    dropIdleSessions: () => maintenance.dropIdleSessions(db),
    dueWork: (redispatchAfter, webhookAfter) => maintenance.dueWork(db, redispatchAfter, webhookAfter),
    staleDispatches: (after, limit) => maintenance.staleDispatches(db, after, limit),
    untakenWebhooks: (after, limit) => maintenance.untakenWebhooks(db, after, limit),
    retentionDue: (bodySeconds, runSeconds) => retention.retentionDue(db, bodySeconds, runSeconds),
    dropOldBodies: (seconds, batch) => retention.dropOldBodies(db, seconds, batch),
    deleteOldRuns: (seconds, batch) => retention.deleteOldRuns(db, seconds, batch),
    eraseRun: (project, runId, actor) => retention.eraseRun(db, project, runId, actor),
    runStats: (q, now) => stats.readRunStats(db, q, now, rolledHint),
    rollUpStats: async () => (rolledHint = await stats.rollUpRunStats(db)),
  };
}

function dispatchRef(r: { id: string; attempt: number; project_id: string; app: string; traceparent: string }) {
  return { runId: r.id, attempt: r.attempt, project: r.project_id, app: r.app, traceparent: r.traceparent };
}

/** Tells the settings cache that `project`'s settings changed, once the change is committed. */
async function afterChange<T>(settings: SubmitSettingsCache, project: string, change: Promise<T>): Promise<T> {
  const done = await change;
  settings.changed(project);
  return done;
}

/** Projects, keys and limits on Postgres. */
export function createPgTenancyStore(db: Kysely<SchedulerDb>, settings: SubmitSettingsCache): TenancyStore {
  return {
    findKey: (secret) => tenancy.findKey(db, secret),
    createProject: (name, limits, audit) => afterChange(settings, name, tenancy.createProject(db, name, limits, audit)),
    getProject: (name) => tenancy.getProject(db, name),
    listProjects: () => tenancy.listProjects(db),
    projectUsage: (names) => tenancy.projectUsage(db, names),
    updateLimits: (name, limits, audit) => afterChange(settings, name, tenancy.updateLimits(db, name, limits, audit)),
    deleteProject: (name, audit) => afterChange(settings, name, tenancy.deleteProject(db, name, audit)),
    createKey: (project, key, audit) => tenancy.createKey(db, project, key, audit),
    listKeys: (project) => tenancy.listKeys(db, project),
    revokeKey: (id, project, audit) => tenancy.revokeKey(db, id, project, audit),
    listAudit: (q) => tenancy.listAudit(db, q),
    countThrottled: (project) => tenancy.countThrottled(db, project),
    openWatchStream: (project, id, max, ttl) => tenancy.openWatchStream(db, project, id, max, ttl),
    renewWatchStream: (id, ttl) => tenancy.renewWatchStream(db, id, ttl),
    closeWatchStream: (id) => tenancy.closeWatchStream(db, id),
  };
}
