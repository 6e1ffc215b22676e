import type { adminPb, appsPb, invokerPb, notifierPb, runsPb } from "@longhaul/shared/proto";

/**
 * The ports the gateway talks through. The gRPC adapters implement them; the
 * HTTP adapter and core logic see only these interfaces, so tests can swap in
 * plain fakes or real in-process gRPC servers.
 */

/** What a project key may do (DESIGN.md "Projects, keys and limits"). */
export type Scope = "read" | "invoke" | "admin";

/** An authenticated HTTP caller: the project its key belongs to, its scopes, and the key as sent. */
export interface Caller {
  project: string;
  scopes: readonly Scope[];
  /** The caller's `Authorization` header value, forwarded to the public gRPC services. */
  authorization: string;
}

/** A key's project and scopes. */
export interface KeyIdentity {
  project: string;
  scopes: readonly Scope[];
}

/** Resolves an API key to its project and scopes (SchedulerInternalService/Authenticate). */
export interface KeyResolver {
  /** Throws LonghaulError `unauthenticated` for an unknown or revoked key. */
  resolve(apiKey: string): Promise<KeyIdentity>;
}

/**
 * AdminService (the operator's) and KeyService (a project admin's own keys),
 * called with the caller's `Authorization` as sent: the scheduler checks it.
 */
export interface AdminPort {
  whoAmI(authorization: string, opts?: CallOptions): Promise<adminPb.WhoAmIResponse>;
  createProject(authorization: string, name: string, opts?: CallOptions): Promise<adminPb.Project>;
  getProject(authorization: string, name: string, opts?: CallOptions): Promise<adminPb.Project>;
  listProjects(authorization: string, opts?: CallOptions): Promise<adminPb.Project[]>;
  updateProjectLimits(authorization: string, name: string, limits: adminPb.ProjectLimitsUpdate, opts?: CallOptions): Promise<adminPb.Project>;
  deleteProject(authorization: string, name: string, opts?: CallOptions): Promise<void>;
  createKey(authorization: string, project: string, name: string, scopes: string[], opts?: CallOptions): Promise<adminPb.CreateKeyResponse>;
  listKeys(authorization: string, project: string, opts?: CallOptions): Promise<adminPb.ApiKey[]>;
  deleteKey(authorization: string, id: string, opts?: CallOptions): Promise<void>;
  listAuditEntries(authorization: string, req: adminPb.ListAuditEntriesRequest, opts?: CallOptions): Promise<adminPb.ListAuditEntriesResponse>;
  /** KeyService: the caller's own project. */
  createOwnKey(caller: Caller, name: string, scopes: string[], opts?: CallOptions): Promise<adminPb.CreateKeyResponse>;
  listOwnKeys(caller: Caller, opts?: CallOptions): Promise<adminPb.ApiKey[]>;
  deleteOwnKey(caller: Caller, id: string, opts?: CallOptions): Promise<void>;
}

/** Options every port call may take. */
export interface CallOptions {
  /** Aborted when the HTTP client goes away: the gRPC call is cancelled. */
  signal?: AbortSignal;
}

/** RunService, called on the caller's behalf. */
export interface RunsPort {
  submitRun(caller: Caller, req: runsPb.SubmitRunRequest, opts?: CallOptions): Promise<runsPb.SubmitRunResponse>;
  getRun(caller: Caller, runId: string, waitSeconds: number, opts?: CallOptions): Promise<runsPb.Run>;
  getRunResult(caller: Caller, runId: string, opts?: CallOptions): Promise<runsPb.GetRunResultResponse>;
  listRuns(caller: Caller, req: runsPb.ListRunsRequest, opts?: CallOptions): Promise<runsPb.ListRunsResponse>;
  cancelRun(caller: Caller, runId: string, opts?: CallOptions): Promise<runsPb.Run>;
  /** Erases a finished run's bodies and headers (RunService/EraseRun). */
  eraseRun(caller: Caller, runId: string, opts?: CallOptions): Promise<runsPb.Run>;
  /** A new run of a finished one's stored request (RunService/RetryRun), with its own queue deadline when `queueTtlSeconds` is set. */
  retryRun(caller: Caller, runId: string, opts?: CallOptions & { queueTtlSeconds?: number }): Promise<string>;
  /** Retries every finished run matching a filter (RunService/RetryRuns). */
  retryRuns(caller: Caller, req: runsPb.RetryRunsRequest, opts?: CallOptions): Promise<runsPb.RetryRunsResponse>;
  /** The request stored for the run (RunService/GetRunInput). */
  getRunInput(caller: Caller, runId: string, opts?: CallOptions): Promise<runsPb.GetRunInputResponse>;
  /** The overview's figures over a window (RunService/GetRunStats). */
  getRunStats(caller: Caller, req: runsPb.GetRunStatsRequest, opts?: CallOptions): Promise<runsPb.GetRunStatsResponse>;
  /**
   * The run now, then at each change; ends when the run is finished or when
   * `maxSeconds` pass (the stream's deadline), whichever comes first.
   */
  watchRun(caller: Caller, runId: string, maxSeconds: number, signal: AbortSignal): AsyncIterable<runsPb.Run>;
  /**
   * The project's runs as they change (RunService/WatchRuns): `live` first,
   * once the scheduler listens, then each changed run; ends when `maxSeconds`
   * pass (the stream's deadline) or `signal` aborts. A scheduler copy going
   * away is bridged: the watch goes on on another copy, which catches up.
   */
  watchRuns(caller: Caller, req: runsPb.WatchRunsRequest, maxSeconds: number, signal: AbortSignal): AsyncIterable<RunsWatchItem>;
}

/** One item of a project watch. */
export type RunsWatchItem = { kind: "live" } | { kind: "run"; run: runsPb.Run };

/** A run's stored answer, read without an API key for a signed result link. */
export interface StoredResult {
  runId: string;
  project: string;
  status: runsPb.RunStatus;
  statusCode: number;
  contentType: string;
  body: Buffer;
  bodyTruncated: boolean;
  /** The stored body was dropped after the retention period, or erased. */
  bodyGone: boolean;
}

/** Reads results for signed links; the link's signature is the authorisation. */
export interface SignedResultsPort {
  getResult(runId: string, opts?: CallOptions): Promise<StoredResult>;
}

/** AppService, called on the caller's behalf. */
export interface AppsPort {
  putApp(caller: Caller, app: appsPb.App, opts?: CallOptions): Promise<{ app: appsPb.App; created: boolean }>;
  getApp(caller: Caller, name: string, opts?: CallOptions): Promise<appsPb.App>;
  deleteApp(caller: Caller, name: string, opts?: CallOptions): Promise<void>;
  listApps(caller: Caller, opts?: CallOptions): Promise<appsPb.App[]>;
  /** Holds (AppService/PauseApp) or releases (ResumeApp) the app's queue. */
  pauseApp(caller: Caller, name: string, opts?: CallOptions): Promise<appsPb.App>;
  resumeApp(caller: Caller, name: string, opts?: CallOptions): Promise<appsPb.App>;
}

/** NotifierInternalService; the project is always the authenticated caller's. */
export interface WebhooksPort {
  getSecret(project: string, opts?: CallOptions): Promise<notifierPb.GetWebhookSecretResponse>;
  rotateSecret(project: string, opts?: CallOptions): Promise<notifierPb.RotateWebhookSecretResponse>;
  listDeliveries(project: string, runId: string, opts?: CallOptions): Promise<notifierPb.Delivery | undefined>;
  redeliver(project: string, runId: string, opts?: CallOptions): Promise<notifierPb.Delivery | undefined>;
}

/** One piece of the app's answer on a pass-through call. */
export type InvokeResponsePart =
  | { kind: "head"; statusCode: number; headers: runsPb.Header[] }
  | { kind: "body"; chunk: Buffer };

/** InvokerService/Invoke: one synchronous pass-through call. */
export interface InvokerPort {
  /**
   * Sends the head, streams `body` in, and yields the app's answer as it
   * arrives. `signal` cancels the call (client gone); `deadlineSeconds`
   * bounds it.
   */
  invoke(
    head: invokerPb.InvokeHead,
    body: AsyncIterable<Buffer>,
    deadlineSeconds: number,
    signal: AbortSignal,
  ): AsyncIterable<InvokeResponsePart>;
}

/** Whether the scheduler answers its health check. */
export interface HealthPort {
  schedulerServing(): Promise<boolean>;
}

/** Everything the HTTP adapter needs from the mesh. */
export interface MeshPorts {
  keys: KeyResolver;
  admin: AdminPort;
  runs: RunsPort;
  signedResults: SignedResultsPort;
  apps: AppsPort;
  webhooks: WebhooksPort;
  invoker: InvokerPort;
  health: HealthPort;
}
