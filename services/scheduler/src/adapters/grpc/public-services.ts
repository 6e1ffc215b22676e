import { LonghaulError } from "@longhaul/shared/errors";
import { checkAppUrl, type EgressPolicy } from "@longhaul/shared/egress";
import { maskHeaders, maskQuery } from "@longhaul/shared/domain";
import type { Logger } from "@longhaul/shared/logger";
import { RunAttr, inSpan, traceCarrier } from "@longhaul/shared/telemetry";
import { serverStream, unary, type CallContext } from "@longhaul/shared/grpc";
import { appsPb, runsPb } from "@longhaul/shared/proto";
import type { RunRegistry } from "../../core/run-registry.js";
import type { StoredApp } from "../../core/ports.js";
import type { Tenancy } from "../../core/tenancy.js";
import type { Scope } from "../../core/tenancy-model.js";
import { callerOf, callerOfAuthorization, whileKeyWorks } from "./caller.js";
import { resultToProto, runToProto, statusFromProto } from "./mapping.js";

/** The project of the API key in the `authorization: Bearer <key>` metadata, checked for `scope`. */
async function projectOf(tenancy: Tenancy, ctx: CallContext, scope: Scope, what: string): Promise<string> {
  return (await callerOf(tenancy, ctx, scope, what)).project;
}

/** A refusal over a project limit counts in the project's usage ("429s today"). */
async function countingThrottles<T>(tenancy: Tenancy, project: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof LonghaulError && err.code === "resource_exhausted") await tenancy.noteThrottled(project);
    throw err;
  }
}

function appToProto(a: StoredApp & { queued: number; inFlight: number }): appsPb.App {
  return {
    name: a.name,
    url: a.url,
    timeoutSeconds: a.timeoutSeconds,
    maxConcurrency: a.maxConcurrency,
    retry: {
      maxAttempts: a.maxAttempts,
      initialBackoffSeconds: a.initialBackoffSeconds,
      maxBackoffSeconds: a.maxBackoffSeconds,
      idempotent: a.idempotent,
    },
    queueTtlSeconds: a.queueTtlSeconds,
    createdAt: a.createdAt,
    updatedAt: a.updatedAt,
    inFlight: a.inFlight,
    queued: a.queued,
    paused: a.paused ?? false,
  };
}

/** One submit as RunService/SubmitRun and SchedulerInternalService/SubmitRuns both make it. */
export type Submit = (authorization: unknown, req: runsPb.SubmitRunRequest) => Promise<runsPb.SubmitRunResponse>;

/**
 * The body of a submit, shared by the unary RunService/SubmitRun and the
 * gateway's SubmitRuns stream: the caller's key (`authorization`, as sent)
 * must have the `invoke` scope; a refusal over a project limit counts in its
 * usage. `run.submit` is the run's own first span, started in the active
 * context (the call's or the stream message's): the run stores its context
 * (traceCarrier), and every later hop of the run joins it.
 */
export function createSubmit(registry: RunRegistry, tenancy: Tenancy): Submit {
  return (authorization, req) =>
    inSpan("run.submit", { attributes: { [RunAttr.app]: req.app } }, async (span) => {
      const { project } = await callerOfAuthorization(tenancy, authorization, "invoke", "submitting a run");
      const r = req.request;
      const accepted = await countingThrottles(tenancy, project, () =>
        registry.submit(
          project,
          {
            app: req.app,
            method: r?.method ?? "",
            path: r?.path ?? "",
            query: r?.query ?? "",
            headers: r?.headers ?? [],
            body: r?.body ?? Buffer.alloc(0),
            webhookUrl: req.webhookUrl,
            timeoutSeconds: req.timeoutSeconds,
            priority: req.priority,
            idempotencyKey: req.idempotencyKey,
            notBefore: req.notBefore,
            queueTtlSeconds: req.queueTtlSeconds,
            labels: req.labels,
            runId: req.runId,
          },
          traceCarrier(),
        ),
      );
      span.setAttributes({ [RunAttr.runId]: accepted.runId, [RunAttr.project]: project, "longhaul.existing": accepted.existing });
      return accepted;
    });
}

/**
 * `longhaul.v1.RunService` on the core registry. When `closing` aborts (the
 * scheduler shuts down) the watches end at once: WatchRun and WatchRuns
 * streams with `unavailable` (the gateway opens them again on another copy),
 * long polls (GetRun with `wait_seconds`) with the run as it is then, as
 * when their wait is up.
 */
export function createRunService(registry: RunRegistry, tenancy: Tenancy, log: Logger, closing?: AbortSignal): runsPb.RunServiceServer {
  const submit = createSubmit(registry, tenancy);
  return {
    submitRun: unary(log, "SubmitRun", (req: runsPb.SubmitRunRequest, ctx) => submit(ctx.metadata.get("authorization")[0], req)),
    getRun: unary(log, "GetRun", async (req: runsPb.GetRunRequest, ctx) => {
      const caller = await callerOf(tenancy, ctx, "read", "reading runs");
      if (!req.waitSeconds) return { run: runToProto(await registry.getRun(caller.project, req.runId)) };
      // A long poll is a watch: it holds a stream slot and ends when its key is revoked.
      let v: Awaited<ReturnType<typeof registry.waitRun>> | undefined;
      const polled = closing ? { ...ctx, signal: AbortSignal.any([ctx.signal, closing]) } : ctx;
      await countingThrottles(tenancy, caller.project, () =>
        whileKeyWorks(tenancy, polled, caller, async (signal) => {
          v = await registry.waitRun(caller.project, req.runId, req.waitSeconds, signal);
        }),
      );
      return { run: runToProto(v!) };
    }),
    getRunResult: unary(log, "GetRunResult", async (req: runsPb.GetRunResultRequest, ctx) => {
      const { run } = await registry.getRun(await projectOf(tenancy, ctx, "read", "reading results"), req.runId);
      return resultToProto(run);
    }),
    getRunInput: unary(log, "GetRunInput", async (req: runsPb.GetRunInputRequest, ctx) => {
      const { run } = await registry.getRun(await projectOf(tenancy, ctx, "read", "reading runs"), req.runId);
      // Shown, never handed back: secrets are masked as the HTTP API masks them.
      return {
        runId: run.id,
        request: {
          method: run.method,
          path: run.path,
          query: maskQuery(run.query),
          headers: maskHeaders(run.request_headers),
          body: run.request_body ?? Buffer.alloc(0),
        },
        bodyStored: run.request_body !== null,
      };
    }),
    listRuns: unary(log, "ListRuns", async (req: runsPb.ListRunsRequest, ctx) => {
      const project = await projectOf(tenancy, ctx, "read", "listing runs");
      if (req.status === runsPb.RunStatus.UNRECOGNIZED) throw new LonghaulError("invalid_argument", "status: unknown value");
      const { runs, nextCursor } = await registry.listRuns(project, {
        app: req.app,
        status: statusFromProto(req.status),
        createdAfter: req.createdAfter,
        createdBefore: req.createdBefore,
        statusCodeMin: req.statusCodeMin,
        statusCodeMax: req.statusCodeMax,
        idPrefix: req.idPrefix,
        labels: req.labels,
        limit: req.limit,
        cursor: req.cursor,
      });
      return { runs: runs.map((run) => runToProto({ run, attempts: [] })), nextCursor };
    }),
    cancelRun: unary(log, "CancelRun", async (req: runsPb.CancelRunRequest, ctx) => {
      const project = await projectOf(tenancy, ctx, "invoke", "cancelling a run");
      await registry.cancel(project, req.runId);
      return { run: runToProto(await registry.getRun(project, req.runId)) };
    }),
    eraseRun: unary(log, "EraseRun", async (req: runsPb.EraseRunRequest, ctx) => {
      const caller = await callerOf(tenancy, ctx, "admin", "erasing a run");
      return { run: runToProto({ run: await registry.erase(caller.project, req.runId, `key:${caller.keyId}`), attempts: [] }) };
    }),
    retryRun: unary(log, "RetryRun", (req: runsPb.RetryRunRequest, ctx) =>
      inSpan("run.submit", { attributes: { "longhaul.retry_of": req.runId } }, async (span) => {
        const project = await projectOf(tenancy, ctx, "invoke", "retrying a run");
        const { runId } = await countingThrottles(tenancy, project, () => registry.retry(project, req.runId, traceCarrier(), req.queueTtlSeconds));
        span.setAttribute(RunAttr.runId, runId);
        return { runId };
      })),
    retryRuns: unary(log, "RetryRuns", async (req: runsPb.RetryRunsRequest, ctx) => {
      const project = await projectOf(tenancy, ctx, "invoke", "retrying runs");
      if (req.status === runsPb.RunStatus.UNRECOGNIZED) throw new LonghaulError("invalid_argument", "status: unknown value");
      const res = await countingThrottles(tenancy, project, () =>
        registry.retryRuns(
          project,
          {
            app: req.app,
            status: statusFromProto(req.status),
            errorCode: req.errorCode,
            createdAfter: req.createdAfter,
            createdBefore: req.createdBefore,
            limit: req.limit,
          },
          traceCarrier(),
        ),
      );
      return { retried: res.retried, runIds: res.runIds, more: res.more };
    }),
    watchRun: serverStream(log, "WatchRun", async (req: runsPb.WatchRunRequest, ctx, write: (m: runsPb.WatchRunResponse) => void) => {
      const caller = await callerOf(tenancy, ctx, "read", "watching a run");
      await countingThrottles(tenancy, caller.project, () =>
        whileKeyWorks(tenancy, ctx, caller, (signal) => registry.watch(caller.project, req.runId, signal, (v) => write({ run: runToProto(v) })), closing),
      );
    }),
    getRunStats: unary(log, "GetRunStats", async (req: runsPb.GetRunStatsRequest, ctx) => {
      const s = await registry.stats(await projectOf(tenancy, ctx, "read", "reading run figures"), { window: req.window, app: req.app, mode: req.mode });
      return {
        window: s.window,
        bucketSeconds: s.bucketSeconds,
        buckets: s.buckets.map((b) => ({
          start: b.start,
          succeeded: b.succeeded,
          failed: b.failed,
          timedOut: b.timedOut,
          cancelled: b.cancelled,
          expired: b.expired,
          queueWaitP50Ms: b.queueWaitP50Ms,
          queueWaitP95Ms: b.queueWaitP95Ms,
          runP50Ms: b.runP50Ms,
          runP95Ms: b.runP95Ms,
          webhookDelivered: b.webhookDelivered,
          webhookFailed: b.webhookFailed,
        })),
        inFlight: s.inFlight,
        queued: s.queued,
      };
    }),
    watchRuns: serverStream(log, "WatchRuns", async (req: runsPb.WatchRunsRequest, ctx, write: (m: runsPb.WatchRunsResponse) => void) => {
      const caller = await callerOf(tenancy, ctx, "read", "watching runs");
      await countingThrottles(tenancy, caller.project, () =>
        whileKeyWorks(tenancy, ctx, caller, (signal) =>
          registry.watchRuns(caller.project, { app: req.app, runIds: req.runIds, createdAfter: req.createdAfter }, signal, {
            live: () => write({ run: undefined }),
            run: (run) => write({ run: runToProto({ run, attempts: [] }) }),
          }),
          closing,
        ),
      );
    }),
  };
}

/** `longhaul.v1.AppService` on the core registry. */
export function createAppService(registry: RunRegistry, tenancy: Tenancy, log: Logger, egress: EgressPolicy): appsPb.AppServiceServer {
  return {
    putApp: unary(log, "PutApp", async (req: appsPb.PutAppRequest, ctx) => {
      const project = await projectOf(tenancy, ctx, "admin", "changing apps");
      if (!req.app) throw new LonghaulError("invalid_argument", "app: required");
      // Where the URL points, resolved: refused with nothing stored (the invoker checks again at each call).
      await checkAppUrl(req.app.url, egress);
      const { app, created } = await registry.putApp(project, {
        name: req.app.name,
        url: req.app.url,
        timeoutSeconds: req.app.timeoutSeconds,
        maxConcurrency: req.app.maxConcurrency,
        queueTtlSeconds: req.app.queueTtlSeconds,
        retry: req.app.retry,
      });
      return { app: appToProto(app), created };
    }),
    getApp: unary(log, "GetApp", async (req: appsPb.GetAppRequest, ctx) => ({
      app: appToProto(await registry.getApp(await projectOf(tenancy, ctx, "read", "reading apps"), req.name)),
    })),
    deleteApp: unary(log, "DeleteApp", async (req: appsPb.DeleteAppRequest, ctx) => {
      await registry.deleteApp(await projectOf(tenancy, ctx, "admin", "changing apps"), req.name);
      return {};
    }),
    listApps: unary(log, "ListApps", async (_req: appsPb.ListAppsRequest, ctx) => ({
      apps: (await registry.listApps(await projectOf(tenancy, ctx, "read", "reading apps"))).map(appToProto),
    })),
    pauseApp: unary(log, "PauseApp", async (req: appsPb.PauseAppRequest, ctx) => ({
      app: appToProto(await registry.pauseApp(await projectOf(tenancy, ctx, "admin", "pausing an app"), req.name)),
    })),
    resumeApp: unary(log, "ResumeApp", async (req: appsPb.ResumeAppRequest, ctx) => ({
      app: appToProto(await registry.resumeApp(await projectOf(tenancy, ctx, "admin", "resuming an app"), req.name)),
    })),
  };
}
