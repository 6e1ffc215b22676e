import { UUID } from "@longhaul/shared/domain";
import { randomUUID } from "node:crypto";
import { LonghaulError } from "@longhaul/shared/errors";
import { runsPb } from "@longhaul/shared/proto";
import { countAppOutcomes } from "../../core/app-outcomes.js";
import type { Caller } from "../../core/ports.js";
import {
  RUNPOD_EXPIRES_LABEL,
  RUNPOD_JOB_LABEL,
  isRunpodExpired,
  isRunpodFinished,
  parseRunpodRequest,
  runpodAppBody,
  runpodQueueTtlSeconds,
  runpodRetryQueueTtlSeconds,
  runpodJob,
  runpodStatus,
  runpodTimeoutSeconds,
} from "../../core/runpod.js";
import { compatRoute, finishedAnswer, runStatusName, waitForRun } from "./compat-routes.js";
import { readJson, sendJson, type ErrorAnswer } from "./http-io.js";
import type { RequestContext, Route } from "./router.js";
import type { RouteDeps } from "./route-deps.js";


/** RunPod's `?wait=` of runsync and status-sync, in ms (its SDK sends 1000..90000; RunPod takes up to 300000). */
function waitMs(ctx: RequestContext, fallback: number): number {
  const raw = ctx.query.get("wait");
  if (raw === null || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) throw new LonghaulError("invalid_argument", "wait must be milliseconds");
  return Math.min(300_000, Math.max(1000, Number(raw)));
}

/** RunPod answers errors as `{"error": "<message>"}` with the HTTP status. */
function sendRunpodError(ctx: RequestContext, a: ErrorAnswer): void {
  sendJson(ctx.res, a.status, { error: a.shown.message }, a.headers);
}

/** The newest run of a job (a retried job has several). */
async function jobRun(deps: RouteDeps, caller: Caller, app: string, jobId: string, signal: AbortSignal): Promise<runsPb.Run> {
  if (!UUID.test(jobId)) throw new LonghaulError("not_found", `job ${jobId} not found`);
  const page = await deps.ports.runs.listRuns(
    caller,
    runsPb.ListRunsRequest.fromPartial({ app, labels: { [RUNPOD_JOB_LABEL]: jobId.toLowerCase() }, limit: 1 }),
    { signal },
  );
  const run = page.runs[0];
  if (!run) throw new LonghaulError("not_found", `job ${jobId} not found`);
  await expireJob(deps, caller, jobId, run);
  return run;
}

/**
 * A job past its `policy.ttl` is gone: cancelled if it has not ended (so it
 * never starts, or runs no longer), then answered 404.
 */
async function expireJob(deps: RouteDeps, caller: Caller, jobId: string, run: runsPb.Run): Promise<void> {
  if (!isRunpodExpired(run.labels, deps.now().getTime())) return;
  if (!isRunpodFinished(runpodStatus(runStatusName(run.status)))) {
    await deps.ports.runs.cancelRun(caller, run.id).catch((err: unknown) => {
      // It ended meanwhile: nothing left to stop.
      if (!(err instanceof LonghaulError && err.code === "conflict")) throw err;
    });
  }
  throw new LonghaulError("not_found", `job ${jobId} expired: it outlived its policy.ttl`);
}

async function jobAnswer(deps: RouteDeps, caller: Caller, jobId: string, run: runsPb.Run, signal: AbortSignal) {
  return runpodJob(jobId, run, runStatusName(run.status), await finishedAnswer(deps, caller, run, signal));
}

/**
 * RunPod serverless's endpoint API at `/v2/{app}/...` (docs.runpod.io
 * "Serverless: send requests"), so RunPod's clients work with a new base URL
 * (`runpodSdk(key, { baseUrl: "<gateway>/v2" })`). Every answer is a 200, as
 * RunPod's SDK expects; errors are `{"error"}` with their status.
 */
export function runpodRoutes(deps: RouteDeps): Route[] {
  const { runs, apps } = deps.ports;
  const route = (method: string, pattern: string, scope: "invoke" | "read", handler: (ctx: RequestContext, caller: Caller) => Promise<void>) =>
    compatRoute(deps, sendRunpodError, { method, pattern, scope, handler });

  const submit = async (ctx: RequestContext, caller: Caller): Promise<{ jobId: string; runId: string }> => {
    const app = ctx.params.app!;
    const req = parseRunpodRequest(await readJson(ctx.req, deps.limits.maxBodyBytes));
    const jobId = randomUUID();
    // A ttl bounds the run's timeout, which may not pass the app's.
    const timeoutSeconds = req.ttlMs === undefined ? req.timeoutSeconds : runpodTimeoutSeconds(req, (await apps.getApp(caller, app, { signal: ctx.signal })).timeoutSeconds);
    const expires = req.ttlMs === undefined ? {} : { [RUNPOD_EXPIRES_LABEL]: String(deps.now().getTime() + req.ttlMs) };
    const res = await runs.submitRun(
      caller,
      runsPb.SubmitRunRequest.fromPartial({
        app,
        request: { method: "POST", path: "/", query: "", headers: [{ name: "content-type", value: "application/json" }], body: runpodAppBody(jobId, req.input) },
        webhookUrl: req.webhook ?? "",
        timeoutSeconds,
        priority: req.priority,
        // The scheduler never starts it past the ttl, asked about or not.
        queueTtlSeconds: runpodQueueTtlSeconds(req),
        labels: { [RUNPOD_JOB_LABEL]: jobId, ...expires },
      }),
    );
    deps.metrics.runsAccepted.inc({ existing: String(res.existing) });
    return { jobId, runId: res.runId };
  };

  const routes: Route[] = [
    route("POST", "/v2/:app/run", "invoke", async (ctx, caller) => {
      const { jobId } = await submit(ctx, caller);
      sendJson(ctx.res, 200, { id: jobId, status: "IN_QUEUE" });
    }),
    route("POST", "/v2/:app/runsync", "invoke", async (ctx, caller) => {
      const wait = waitMs(ctx, 90_000);
      const { jobId, runId } = await submit(ctx, caller);
      const run = await waitForRun(deps, caller, runId, wait, ctx.signal);
      sendJson(ctx.res, 200, await jobAnswer(deps, caller, jobId, run, ctx.signal));
    }),
    route("POST", "/v2/:app/cancel/:job", "invoke", async (ctx, caller) => {
      let run = await jobRun(deps, caller, ctx.params.app!, ctx.params.job!, ctx.signal);
      // Cancelling a finished job changes nothing: it is answered as it is.
      if (!isRunpodFinished(runpodStatus(runStatusName(run.status)))) run = await runs.cancelRun(caller, run.id);
      sendJson(ctx.res, 200, await jobAnswer(deps, caller, ctx.params.job!.toLowerCase(), run, ctx.signal));
    }),
    route("POST", "/v2/:app/retry/:job", "invoke", async (ctx, caller) => {
      const jobId = ctx.params.job!.toLowerCase();
      const run = await jobRun(deps, caller, ctx.params.app!, jobId, ctx.signal);
      const status = runpodStatus(runStatusName(run.status));
      if (status !== "FAILED" && status !== "TIMED_OUT") {
        throw new LonghaulError("invalid_argument", `job ${jobId} is ${status}: only FAILED or TIMED_OUT jobs are retried`);
      }
      // The new run keeps the old one's labels, so the job id now names it,
      // and a queue deadline: never started past the job's policy.ttl.
      await runs.retryRun(caller, run.id, { signal: ctx.signal, queueTtlSeconds: runpodRetryQueueTtlSeconds(run, deps.now().getTime()) });
      sendJson(ctx.res, 200, { id: jobId, status: "IN_QUEUE" });
    }),
    route("POST", "/v2/:app/purge-queue", "invoke", async (ctx, caller) => {
      const app = ctx.params.app!;
      await apps.getApp(caller, app, { signal: ctx.signal });
      let removed = 0;
      // Queued runs only: RunPod's purge leaves jobs in progress alone.
      for (;;) {
        const page = await runs.listRuns(
          caller,
          runsPb.ListRunsRequest.fromPartial({ app, status: runsPb.RunStatus.RUN_STATUS_QUEUED, limit: 500 }),
          { signal: ctx.signal },
        );
        let cancelled = 0;
        for (const r of page.runs) {
          try {
            await runs.cancelRun(caller, r.id);
            cancelled++;
          } catch (err) {
            // Started meanwhile: no longer in the queue.
            if (!(err instanceof LonghaulError && err.code === "conflict")) throw err;
          }
        }
        removed += cancelled;
        if (page.runs.length < 500 || cancelled === 0) break;
      }
      sendJson(ctx.res, 200, { removed, status: "completed" });
    }),
    route("GET", "/v2/:app/health", "read", async (ctx, caller) => {
      const name = ctx.params.app!;
      const app = await apps.getApp(caller, name, { signal: ctx.signal });
      const outcomes = await countAppOutcomes(
        runs,
        caller,
        { app: name, windowSeconds: 3600, now: deps.now(), statusName: runStatusName },
        { signal: ctx.signal },
      );
      const n = (s: string) => outcomes.counts[s] ?? 0;
      sendJson(ctx.res, 200, {
        jobs: {
          completed: n("succeeded"),
          failed: n("failed") + n("timed_out") + n("expired"),
          inProgress: app.inFlight,
          inQueue: app.queued,
          retried: 0,
        },
        // Longhaul has no workers of its own: the app's calls held now stand for running ones.
        workers: { idle: 0, initializing: 0, ready: 0, running: app.inFlight, throttled: 0, unhealthy: 0 },
      });
    }),
  ];
  // RunPod takes GET and POST for the reads.
  for (const method of ["GET", "POST"]) {
    routes.push(
      route(method, "/v2/:app/status/:job", "read", async (ctx, caller) => {
        const run = await jobRun(deps, caller, ctx.params.app!, ctx.params.job!, ctx.signal);
        sendJson(ctx.res, 200, await jobAnswer(deps, caller, ctx.params.job!.toLowerCase(), run, ctx.signal));
      }),
      route(method, "/v2/:app/status-sync/:job", "read", async (ctx, caller) => {
        const wait = waitMs(ctx, 90_000);
        const found = await jobRun(deps, caller, ctx.params.app!, ctx.params.job!, ctx.signal);
        const run = await waitForRun(deps, caller, found.id, wait, ctx.signal);
        await expireJob(deps, caller, ctx.params.job!.toLowerCase(), run);
        sendJson(ctx.res, 200, await jobAnswer(deps, caller, ctx.params.job!.toLowerCase(), run, ctx.signal));
      }),
      route(method, "/v2/:app/stream/:job", "read", async (ctx, caller) => {
        // The app answers once, at the end: the stream is empty until then, and
        // then holds the whole output as its one item. Each call waits up to 10 s.
        const found = await jobRun(deps, caller, ctx.params.app!, ctx.params.job!, ctx.signal);
        const run = await waitForRun(deps, caller, found.id, 10_000, ctx.signal);
        await expireJob(deps, caller, ctx.params.job!.toLowerCase(), run);
        const job = await jobAnswer(deps, caller, ctx.params.job!.toLowerCase(), run, ctx.signal);
        const body: Record<string, unknown> = { status: job.status, stream: "output" in job ? [{ output: job.output }] : [] };
        if ("error" in job) body.error = job.error;
        sendJson(ctx.res, 200, body);
      }),
    );
  }
  // Anything else under /v2 is RunPod's 404, not Longhaul's.
  routes.push(
    route("*", "/v2/*", "read", async (ctx) => {
      throw new LonghaulError("not_found", `no RunPod operation ${ctx.req.method ?? "GET"} ${ctx.req.url?.split("?")[0] ?? ""}`);
    }),
  );
  return routes;
}
