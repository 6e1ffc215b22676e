import type { AppSettings, AttemptRecord, AttemptRef, DispatchRef, EndedRun, HeaderPair, RunRecord, StartedRun } from "./model.js";
import type { Decision } from "./retry-policy.js";
import type { StatsQuery, StatsResult } from "./run-stats.js";
import type { AuditInput, AuditRecord, KeyRecord, ProjectLimits, ProjectRecord, ProjectUsage, Scope } from "./tenancy-model.js";

/** A stored app with its timestamps. */
export interface StoredApp extends AppSettings {
  createdAt: Date;
  updatedAt: Date;
}

export interface NewRun {
  project: string;
  app: AppSettings;
  mode: "async" | "sync";
  method: string;
  path: string;
  query: string;
  headers: HeaderPair[];
  body: Buffer;
  webhookUrl: string | null;
  timeoutSeconds: number;
  priority: number;
  idempotencyKey: string | null;
  requestHash: string;
  notBefore: Date | null;
  /** The run's own start deadline; null: only the app's queue TTL applies. */
  expiresAt: Date | null;
  retryOf: string | null;
  traceparent: string;
  tracestate: string;
  labels: Record<string, string>;
  maxQueuedPerApp: number;
  idempotencyTtlSeconds: number;
}

/** The invoker (and its Handoff stream) a submit's run is started for. */
export interface StartFor {
  invokerId: string;
  leaseSeconds: number;
  streamId: string;
}

/** A submit as stored. */
export interface SubmitOutcome {
  runId: string;
  existing: boolean;
  /** Set when the run was inserted as dispatched: publish it after commit. */
  dispatch: DispatchRef | null;
  /** Set when the run was inserted started for the invoker of `startFor`: send it to that invoker. */
  started: StartedRun | null;
}

/**
 * Invokers that take runs at submit (their Handoff streams on this copy):
 * a run started for one of them costs no dispatch and no claim.
 */
export interface Handoff {
  /** Takes one credit of an invoker with room; undefined when none has any. */
  reserve(): HandoffSlot | undefined;
}

/** One invoker's credit, taken for one submit. */
export interface HandoffSlot {
  readonly invokerId: string;
  /** The stream's id, chosen by the invoker: stored with the attempt. */
  readonly streamId: string;
  /** Sends the started run; false when the invoker's stream closed first (the run never left). */
  send(run: StartedRun): boolean;
  /** Gives the credit back unused (the run was not started for this invoker). */
  cancel(): void;
}

export interface AttemptResult {
  statusCode: number;
  headers: HeaderPair[];
  body: Buffer | null;
  bodyTruncated: boolean;
  errorCode: string;
  errorMessage: string;
}

export interface ListFilter {
  project: string;
  app?: string | undefined;
  status?: string | undefined;
  createdAfter?: Date | undefined;
  createdBefore?: Date | undefined;
  /** The app's status code from min to max, both included. */
  statusCode?: { min: number; max: number } | undefined;
  /** Ids from `first` to `last` (a prefix's range, both included). */
  idRange?: { first: string; last: string } | undefined;
  /** Every one of these labels. */
  labels?: Record<string, string> | undefined;
  limit: number;
  after?: { createdAt: Date; id: string } | undefined;
}

/**
 * What the notifier needs to deliver a run's webhook, carried in `run.finished`
 * when the body is small (the notifier then asks the scheduler
 * nothing before its first attempt).
 */
export interface FinishedDelivery {
  webhookUrl: string;
  statusCode: number;
  contentType: string;
  body: Buffer;
  bodyTruncated: boolean;
  errorCode: string;
  errorMessage: string;
}

/** Which of the reconciler's repairs have work now. */
export interface DueWork {
  expire: boolean;
  leases: boolean;
  queued: boolean;
  redispatch: boolean;
  webhooks: boolean;
  /**
   * When the first waiting run (a delayed run, a retry's backoff) becomes due
   * or the first deadline of a waiting run passes; null: none.
   */
  nextDueAt?: Date | null;
}

/** Which retention passes have work now (adapters/pg/retention.ts). */
export interface RetentionDue {
  /** Runs past the body retention period that the body pass has not reached. */
  bodies: boolean;
  /** Runs past the run retention period: whole rows to delete. */
  runs: boolean;
  /** Invoker sessions expired for an hour. */
  sessions: boolean;
}

/** Finished runs to retry in bulk (RetryRuns). */
export interface RetryFilter {
  project: string;
  /** A finished status. */
  status: string;
  app?: string | undefined;
  errorCode?: string | undefined;
  createdAfter?: Date | undefined;
  createdBefore?: Date | undefined;
  limit: number;
}

/** Everything the scheduler keeps in Postgres. One method, one statement or transaction. */
export interface SchedulerStore {
  projectOfKey(key: string): Promise<string | undefined>;
  upsertApp(project: string, app: AppSettings): Promise<{ app: StoredApp; created: boolean }>;
  getApp(project: string, name: string): Promise<StoredApp | undefined>;
  listApps(project: string): Promise<StoredApp[]>;
  deleteApp(project: string, name: string): Promise<boolean>;
  /** Holds or releases an app's queue; undefined when there is no such app. */
  setAppPaused(project: string, name: string, paused: boolean): Promise<StoredApp | undefined>;
  /** Ids of finished async runs matching the filter never retried, oldest first. */
  findRetryable(filter: RetryFilter): Promise<string[]>;
  appCounts(project?: string): Promise<{ project: string; app: string; queued: number; inFlight: number }[]>;

  insertRun(run: NewRun): Promise<{ runId: string; existing: boolean; dispatch: DispatchRef | null }>;
  /**
   * Finds the app and inserts the run `build` makes of it, in one transaction.
   * `runId`: the id the caller chose (a resent submit carries the same one);
   * a run of the project with that id already is the answer (`existing`).
   */
  submitRun(
    project: string,
    app: string,
    build: (app: AppSettings) => NewRun,
    runId?: string,
    startFor?: StartFor,
  ): Promise<SubmitOutcome>;
  /**
   * Hands attempts started for `invokerId` that never reached it back to the
   * queue (dispatched again); what to publish. An attempt no longer running
   * for that invoker is left alone.
   */
  returnRuns(invokerId: string, runs: AttemptRef[]): Promise<DispatchRef[]>;
  /**
   * Hands back what was started for `invokerId` on Handoff streams it saw end
   * (`endedStreams`) and that it does not hold (`held`): it never received
   * those. Claimed attempts are never touched.
   */
  returnOrphans(invokerId: string, held: AttemptRef[], endedStreams: string[]): Promise<DispatchRef[]>;
  insertSyncRun(r: {
    project: string; app: string; upstreamUrl: string; method: string; path: string;
    statusCode: number; errorCode: string; errorMessage: string; startedAt: Date; finishedAt: Date;
  }): Promise<string>;
  findRun(project: string | null, id: string): Promise<RunRecord | undefined>;
  findAttempts(runId: string): Promise<AttemptRecord[]>;
  listRuns(filter: ListFilter): Promise<RunRecord[]>;
  /** The project's runs among `ids`, without bodies (as listRuns), in one statement. */
  findRuns(project: string, ids: readonly string[]): Promise<RunRecord[]>;
  claimRun(runId: string, attempt: number, invokerId: string, leaseSeconds: number): Promise<RunRecord | undefined>;
  /** Renews the invoker's own lease (one row) and returns which of `held` (as `id:attempt`) it still owns. */
  renewSession(invokerId: string, held: { runId: string; attempt: number }[], leaseSeconds: number): Promise<Set<string>>;
  endAttempt(
    runId: string,
    attempt: number,
    owner: string | null,
    result: AttemptResult,
    decideFor: (run: RunRecord, app: AppSettings | undefined) => Decision,
  ): Promise<{ run: RunRecord; decision: Decision; limited: boolean } | undefined>;
  /**
   * Ends an attempt the app answered with success, held by `owner`: no policy
   * can change that outcome, so no read first. Undefined when the attempt is
   * no longer the owner's. `limited`: the app has a concurrency limit.
   */
  endSucceeded(runId: string, attempt: number, owner: string, result: AttemptResult): Promise<{ run: EndedRun; limited: boolean } | undefined>;
  cancelRun(project: string, runId: string): Promise<{ run: RunRecord; cancelled: boolean; previousOwner: string | null } | undefined>;
  /** The run's project, or undefined when it has no webhook (or no such run). */
  setWebhookState(runId: string, state: string): Promise<string | undefined>;
  /** setWebhookState for many runs in one statement; resolves with the runs that have a webhook and their projects. */
  setWebhookStates(states: { runId: string; state: string }[]): Promise<{ runId: string; project: string }[]>;

  appsWithDueRuns(limit: number): Promise<{ project: string; app: string }[]>;
  dispatchQueued(project: string, app: string, batch: number): Promise<DispatchRef[]>;
  expireQueued(): Promise<{ id: string; project: string; app: string; webhook: boolean }[]>;
  /** Which repairs of the reconciler have work now, in one read. */
  dueWork(redispatchAfterSeconds: number, webhookAfterSeconds: number): Promise<DueWork>;
  /** Deletes sessions long expired that own no running run; how many. */
  dropIdleSessions(): Promise<number>;
  expiredLeases(limit: number): Promise<{ id: string; attempt: number }[]>;
  staleDispatches(afterSeconds: number, limit: number): Promise<DispatchRef[]>;
  untakenWebhooks(afterSeconds: number, limit: number): Promise<{ id: string; project: string; app: string; status: string }[]>;
  /** Which retention passes have work, in one index-only read. */
  retentionDue(bodySeconds: number, runSeconds: number): Promise<RetentionDue>;
  /** One batch of the body pass: bodies of runs ended before the period dropped; `moved` false once there are none. */
  dropOldBodies(retentionSeconds: number, batch: number): Promise<{ runs: number; moved: boolean }>;
  /** Deletes up to `batch` runs ended before the period, with their attempts and Idempotency-Keys; how many. */
  deleteOldRuns(retentionSeconds: number, batch: number): Promise<number>;
  /** Erases a finished run's bodies and headers (audited); `erased` false when it has not finished. */
  eraseRun(project: string, runId: string, actor: string): Promise<{ run: RunRecord; erased: boolean } | undefined>;

  /** A window of the overview's figures, in one statement (adapters/pg/run-stats.ts). */
  runStats(q: StatsQuery, now: Date): Promise<StatsResult>;
  /** Folds newly finished runs into the stats rollup; one scheduler at a time. Returns how far it has gone. */
  rollUpStats(): Promise<Date>;
}

/** The events the scheduler emits after a commit; each may fail, and the reconciler covers it. */
export interface EventBus {
  /**
   * `republish`: the attempt was published before and nobody claimed it; send
   * it under a new message id so that JetStream's dedup window does not drop it.
   */
  publishDispatch(refs: DispatchRef[], options?: { republish?: boolean }): Promise<void>;
  /**
   * `traceparent`: the run's stored one, so the event joins the run's trace
   * wherever it is published from. The first publish is not acknowledged
   * (a lost one is the reconciler's to repair). `republish`: no notifier
   * took the webhook (the event was dropped from a full stream, or lost):
   * sent under a new message id, past JetStream's dedup, and acknowledged.
   */
  publishFinished(
    run: { id: string; project: string; app: string; status: string; traceparent?: string; delivery?: FinishedDelivery },
    options?: { republish?: boolean },
  ): Promise<void>;
  publishCancel(runId: string): void;
  /** A run of `project` changed (created, state, webhook state): a core NATS notice, at most once. */
  publishChanged(project: string, runId: string, status: string): void;
  /** Calls `onChange` whenever the run changes; returns an unsubscribe. */
  watchChanges(runId: string, onChange: () => void): () => void;
  /** Calls `onChange` with the id of every run of `project` that changes; returns an unsubscribe. */
  watchProject(project: string, onChange: (runId: string) => void): () => void;
  /**
   * Resolves once the broker holds every watch made so far (a round trip).
   * Notices are published by whichever scheduler made the change, over its own
   * connection: a watch that reads before this may miss one sent meanwhile.
   */
  watchesReady(): Promise<void>;
  /** False while the broker is unreachable: submits then answer 503. */
  isConnected(): boolean;
}

/** Counters the core moves; the adapter maps them to Prometheus. */
export interface SchedulerMetrics {
  runAccepted(app: string): void;
  runFinished(app: string, status: string): void;
  dispatchDelay(seconds: number): void;
  startDelay(seconds: number): void;
  /** One read of runs for watchers: of one run (`run`) or of a project's changed runs (`project`). */
  watchRead(watch: "run" | "project"): void;
}

/** Projects, keys and limits in Postgres (adapters/pg/tenancy-store.ts). */
export interface TenancyStore {
  /** The live key with this secret, of a live project (its use noted); undefined otherwise. */
  findKey(secret: string): Promise<KeyRecord | undefined>;
  /** Undefined when the name is taken (by a live or a deleted project). Changes record `audit` in their transaction. */
  createProject(name: string, limits: ProjectLimits, audit: AuditInput): Promise<ProjectRecord | undefined>;
  getProject(name: string): Promise<ProjectRecord | undefined>;
  listProjects(): Promise<ProjectRecord[]>;
  projectUsage(names: readonly string[]): Promise<Map<string, ProjectUsage>>;
  updateLimits(name: string, limits: Partial<ProjectLimits>, audit: AuditInput): Promise<ProjectRecord | undefined>;
  deleteProject(name: string, audit: AuditInput): Promise<boolean>;
  /** The audit entry's target is the new key's id. */
  createKey(project: string, key: { secret: string; name: string; scopes: Scope[]; prefix: string }, audit: AuditInput): Promise<KeyRecord | undefined>;
  listKeys(project: string): Promise<KeyRecord[]>;
  /** The audit entry's project and target are the revoked key's. */
  revokeKey(id: string, project: string | undefined, audit: AuditInput): Promise<KeyRecord | undefined>;
  /** Admin actions newest first (of one project, or all), those before `beforeId` when given. */
  listAudit(q: { project: string; limit: number; beforeId: string | undefined }): Promise<AuditRecord[]>;
  countThrottled(project: string): Promise<void>;
  /** Throws `resource_exhausted` when `max` (> 0) streams of the project are open. */
  openWatchStream(project: string, id: string, max: number, ttlSeconds: number): Promise<void>;
  renewWatchStream(id: string, ttlSeconds: number): Promise<void>;
  closeWatchStream(id: string): Promise<void>;
}
