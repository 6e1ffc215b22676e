import { LonghaulError } from "@longhaul/shared/errors";
import type { Logger } from "@longhaul/shared/logger";
import { RunAttr, inSpan, traceCarrier } from "@longhaul/shared/telemetry";
import { serverStream, unary, type CallContext } from "@longhaul/shared/grpc";
import { appsPb, runsPb } from "@longhaul/shared/proto";
import type { RunRegistry } from "../../core/run-registry.js";
import type { StoredApp } from "../../core/ports.js";
import { resultToProto, runToProto, statusFromProto } from "./mapping.js";

/** The project of the API key in the `authorization: Bearer <key>` metadata. */
async function projectOf(registry: RunRegistry, ctx: CallContext): Promise<string> {
  const header = ctx.metadata.get("authorization")[0];
  const match = typeof header === "string" ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  if (!match?.[1]) throw new LonghaulError("unauthenticated", "authorization metadata must be 'Bearer <api key>'");
  return registry.authenticate(match[1]);
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
  };
}

/** `longhaul.v1.RunService` on the core registry. */
export function createRunService(registry: RunRegistry, log: Logger): runsPb.RunServiceServer {
  return {
    // `run.submit` is the run's own first span: the run stores its context
    // (traceCarrier), and every later hop of the run joins it.
    submitRun: unary(log, "SubmitRun", (req: runsPb.SubmitRunRequest, ctx) =>
      inSpan("run.submit", { attributes: { [RunAttr.app]: req.app } }, async (span) => {
        const project = await projectOf(registry, ctx);
        const r = req.request;
        const accepted = await registry.submit(
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
            labels: req.labels,
          },
          traceCarrier(),
        );
        span.setAttributes({ [RunAttr.runId]: accepted.runId, [RunAttr.project]: project, "longhaul.existing": accepted.existing });
        return accepted;
      })),
    getRun: unary(log, "GetRun", async (req: runsPb.GetRunRequest, ctx) => {
      const project = await projectOf(registry, ctx);
      const v = req.waitSeconds
        ? await registry.waitRun(project, req.runId, req.waitSeconds, ctx.signal)
        : await registry.getRun(project, req.runId);
      return { run: runToProto(v) };
    }),
    getRunResult: unary(log, "GetRunResult", async (req: runsPb.GetRunResultRequest, ctx) => {
      const { run } = await registry.getRun(await projectOf(registry, ctx), req.runId);
      return resultToProto(run);
    }),
    getRunInput: unary(log, "GetRunInput", async (req: runsPb.GetRunInputRequest, ctx) => {
      const { run } = await registry.getRun(await projectOf(registry, ctx), req.runId);
      return {
        runId: run.id,
        request: { method: run.method, path: run.path, query: run.query, headers: run.request_headers, body: run.request_body ?? Buffer.alloc(0) },
        bodyStored: run.request_body !== null,
      };
    }),
    listRuns: unary(log, "ListRuns", async (req: runsPb.ListRunsRequest, ctx) => {
      const project = await projectOf(registry, ctx);
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
      const project = await projectOf(registry, ctx);
      await registry.cancel(project, req.runId);
      return { run: runToProto(await registry.getRun(project, req.runId)) };
    }),
    retryRun: unary(log, "RetryRun", (req: runsPb.RetryRunRequest, ctx) =>
      inSpan("run.submit", { attributes: { "longhaul.retry_of": req.runId } }, async (span) => {
        const { runId } = await registry.retry(await projectOf(registry, ctx), req.runId, traceCarrier());
        span.setAttribute(RunAttr.runId, runId);
        return { runId };
      })),
    watchRun: serverStream(log, "WatchRun", async (req: runsPb.WatchRunRequest, ctx, write: (m: runsPb.WatchRunResponse) => void) => {
      const project = await projectOf(registry, ctx);
      await registry.watch(project, req.runId, ctx.signal, (v) => write({ run: runToProto(v) }));
    }),
    getRunStats: unary(log, "GetRunStats", async (req: runsPb.GetRunStatsRequest, ctx) => {
      const s = await registry.stats(await projectOf(registry, ctx), { window: req.window, app: req.app, mode: req.mode });
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
      const project = await projectOf(registry, ctx);
      await registry.watchRuns(project, { app: req.app, runIds: req.runIds, createdAfter: req.createdAfter }, ctx.signal, {
        live: () => write({ run: undefined }),
        run: (run) => write({ run: runToProto({ run, attempts: [] }) }),
      });
    }),
  };
}

/** `longhaul.v1.AppService` on the core registry. */
export function createAppService(registry: RunRegistry, log: Logger): appsPb.AppServiceServer {
  return {
    putApp: unary(log, "PutApp", async (req: appsPb.PutAppRequest, ctx) => {
      const project = await projectOf(registry, ctx);
      if (!req.app) throw new LonghaulError("invalid_argument", "app: required");
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
      app: appToProto(await registry.getApp(await projectOf(registry, ctx), req.name)),
    })),
    deleteApp: unary(log, "DeleteApp", async (req: appsPb.DeleteAppRequest, ctx) => {
      await registry.deleteApp(await projectOf(registry, ctx), req.name);
      return {};
    }),
    listApps: unary(log, "ListApps", async (_req: appsPb.ListAppsRequest, ctx) => ({
      apps: (await registry.listApps(await projectOf(registry, ctx))).map(appToProto),
    })),
  };
}
