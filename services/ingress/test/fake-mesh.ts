import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { Metadata, type ServerDuplexStream } from "@grpc/grpc-js";
import { LonghaulError } from "@longhaul/shared/errors";
import { createLogger } from "@longhaul/shared/logger";
import { createGrpcServer, errorToFields, serverStream, unary, type GrpcServer } from "@longhaul/shared/grpc";
import { appsPb, invokerPb, notifierPb, runsPb, schedulerPb } from "@longhaul/shared/proto";

/**
 * Real grpc-js servers on ephemeral ports that implement the scheduler,
 * invoker and notifier services with in-memory answers, so the gateway's
 * HTTP adapter is tested over real HTTP and real gRPC.
 */

export const TOKEN = "test-internal-token-0123456789";
export const KEYS: Record<string, string> = { "key-dev": "dev", "key-other": "other" };

/** A sync call as the fake invoker received it. */
export interface ReceivedInvoke {
  head: invokerPb.InvokeHead;
  body: Buffer;
  cancelled: boolean;
}

/** What the fake invoker answers: a function that drives the response stream. */
export type InvokeScript = (
  received: ReceivedInvoke,
  send: (msg: invokerPb.InvokeResponse) => void,
) => Promise<void>;

export interface FakeMesh {
  schedulerAddr: string;
  invokerAddr: string;
  notifierAddr: string;
  submitted: runsPb.SubmitRunRequest[];
  runs: Map<string, runsPb.Run>;
  results: Map<string, runsPb.GetRunResultResponse>;
  apps: Map<string, appsPb.App>;
  invokes: ReceivedInvoke[];
  /** Replace to change how the invoker answers. Default: echo status 200 and the body. */
  invokeScript: InvokeScript;
  /**
   * Emits `run:<id>` with a Run for WatchRun streams; `end:<id>` ends them.
   * `changed` with a Run reaches WatchRuns streams (addRun emits it too).
   */
  watch: EventEmitter;
  /** Every WatchRuns request received. */
  watchRunsCalls: runsPb.WatchRunsRequest[];
  /** Submits that came as messages on SubmitRuns streams (the others were SubmitRun calls). */
  streamSubmits: number;
  /** Per-app errors SubmitRun throws (e.g. resource_exhausted). */
  submitErrors: Map<string, LonghaulError>;
  /** Stored requests GetRunInput answers with (else: no body stored). */
  inputs: Map<string, runsPb.HttpRequest>;
  /** Every ListRuns request received. */
  listCalls: runsPb.ListRunsRequest[];
  addRun(project: string, app: string, status?: runsPb.RunStatus): runsPb.Run;
  stop(): Promise<void>;
}

function projectOf(metadata: Metadata): string {
  return projectOfAuthorization(metadata.get("authorization")[0]);
}

function projectOfAuthorization(authorization: unknown): string {
  const auth = String(authorization ?? "");
  const project = KEYS[auth.replace(/^Bearer /, "")];
  if (!project) throw new LonghaulError("unauthenticated", "invalid API key");
  return project;
}

export async function startFakeMesh(): Promise<FakeMesh> {
  const log = createLogger("fake-mesh", "silent");
  const submitted: runsPb.SubmitRunRequest[] = [];
  const runs = new Map<string, runsPb.Run>();
  const results = new Map<string, runsPb.GetRunResultResponse>();
  const apps = new Map<string, appsPb.App>();
  const idempotency = new Map<string, string>();
  const invokes: ReceivedInvoke[] = [];
  const watch = new EventEmitter();
  watch.setMaxListeners(100);
  const submitErrors = new Map<string, LonghaulError>();
  const inputs = new Map<string, runsPb.HttpRequest>();
  const listCalls: runsPb.ListRunsRequest[] = [];
  const watchRunsCalls: runsPb.WatchRunsRequest[] = [];

  const ownRun = (project: string, runId: string): runsPb.Run => {
    const run = runs.get(runId);
    if (!run || run.project !== project) throw new LonghaulError("not_found", `run ${runId} not found`);
    return run;
  };
  const addRun = (project: string, app: string, status = runsPb.RunStatus.RUN_STATUS_QUEUED) => {
    const run = runsPb.Run.fromPartial({ id: randomUUID(), project, app, status, mode: "async", createdAt: new Date() });
    runs.set(run.id, run);
    watch.emit("changed", run);
    return run;
  };

  const submit = async (authorization: unknown, req: runsPb.SubmitRunRequest): Promise<runsPb.SubmitRunResponse> => {
    const project = projectOfAuthorization(authorization);
    const failure = submitErrors.get(req.app);
    if (failure) throw failure;
    const idemKey = req.idempotencyKey ? `${project}/${req.idempotencyKey}` : "";
    const earlier = idemKey ? idempotency.get(idemKey) : undefined;
    if (earlier) return { runId: earlier, existing: true };
    submitted.push(req);
    const run = addRun(project, req.app);
    if (idemKey) idempotency.set(idemKey, run.id);
    return { runId: run.id, existing: false };
  };

  const scheduler = createGrpcServer({ log, address: "127.0.0.1:0", internalToken: TOKEN });
  scheduler.add(
    schedulerPb.SchedulerInternalServiceService,
    {
      authenticate: unary(log, "Authenticate", async (req: schedulerPb.AuthenticateRequest) => {
        const project = KEYS[req.apiKey];
        if (!project) throw new LonghaulError("unauthenticated", "invalid API key");
        return { project, scopes: ["read", "invoke", "admin"] };
      }),
      // The gateway's submits: each message as SubmitRun, answered by id.
      submitRuns(call: ServerDuplexStream<schedulerPb.SubmitRunsRequest, schedulerPb.SubmitRunsResponse>) {
        call.sendMetadata(new Metadata());
        call.on("data", (req: schedulerPb.SubmitRunsRequest) => {
          mesh.streamSubmits++;
          submit(req.authorization, req.submit ?? runsPb.SubmitRunRequest.fromPartial({})).then(
            (value) => call.write({ id: req.id, result: { $case: "submitted", value } }),
            (err: unknown) => call.write({ id: req.id, result: { $case: "error", value: errorToFields(LonghaulError.from(err)) } }),
          );
        });
        call.on("end", () => call.end());
      },
      getDeliveryInput: unary(log, "GetDeliveryInput", async (req: schedulerPb.GetDeliveryInputRequest) => {
        const run = runs.get(req.runId);
        const result = results.get(req.runId);
        if (!run || !result) throw new LonghaulError("not_found", "no such run");
        return schedulerPb.GetDeliveryInputResponse.fromPartial({
          runId: run.id,
          project: run.project,
          app: run.app,
          status: result.status,
          statusCode: result.statusCode,
          contentType: result.contentType,
          body: result.body,
          bodyGone: result.bodyGone,
        });
      }),
    },
    { internal: true },
  );
  scheduler.add(runsPb.RunServiceService, {
    submitRun: unary(log, "SubmitRun", async (req: runsPb.SubmitRunRequest, ctx) => submit(ctx.metadata.get("authorization")[0], req)),
    getRun: unary(log, "GetRun", async (req: runsPb.GetRunRequest, ctx) => ({
      run: ownRun(projectOf(ctx.metadata), req.runId),
    })),
    getRunResult: unary(log, "GetRunResult", async (req: runsPb.GetRunResultRequest, ctx) => {
      ownRun(projectOf(ctx.metadata), req.runId);
      const result = results.get(req.runId);
      if (!result) throw new LonghaulError("conflict", "run has no result yet");
      return result;
    }),
    listRuns: unary(log, "ListRuns", async (req: runsPb.ListRunsRequest, ctx) => {
      const project = projectOf(ctx.metadata);
      listCalls.push(req);
      // Newest first, like the scheduler; the cursor is an offset here.
      const list = [...runs.values()]
        .filter((r) => r.project === project && (!req.app || r.app === req.app))
        .filter((r) => !req.status || r.status === req.status)
        .filter((r) => !req.createdAfter || (r.createdAt?.getTime() ?? 0) > req.createdAfter.getTime())
        .sort((a, b) => (b.createdAt?.getTime() ?? 0) - (a.createdAt?.getTime() ?? 0));
      const from = Number(req.cursor || 0);
      const limit = req.limit || 50;
      return { runs: list.slice(from, from + limit), nextCursor: list.length > from + limit ? String(from + limit) : "" };
    }),
    getRunInput: unary(log, "GetRunInput", async (req: runsPb.GetRunInputRequest, ctx) => {
      const run = ownRun(projectOf(ctx.metadata), req.runId);
      const input = inputs.get(run.id);
      return { runId: run.id, request: input ?? { method: run.method, path: run.path, query: "", headers: [], body: Buffer.alloc(0) }, bodyStored: input !== undefined };
    }),
    cancelRun: unary(log, "CancelRun", async (req: runsPb.CancelRunRequest, ctx) => {
      const run = ownRun(projectOf(ctx.metadata), req.runId);
      run.status = runsPb.RunStatus.RUN_STATUS_CANCELLED;
      return { run };
    }),
    eraseRun: unary(log, "EraseRun", async (req: runsPb.EraseRunRequest, ctx) => {
      const run = ownRun(projectOf(ctx.metadata), req.runId);
      inputs.delete(run.id);
      return { run };
    }),
    retryRun: unary(log, "RetryRun", async (req: runsPb.RetryRunRequest, ctx) => {
      const project = projectOf(ctx.metadata);
      const old = ownRun(project, req.runId);
      const run = addRun(project, old.app);
      run.retryOf = old.id;
      return { runId: run.id };
    }),
    watchRun: serverStream(log, "WatchRun", async (req: runsPb.WatchRunRequest, ctx, write) => {
      write({ run: ownRun(projectOf(ctx.metadata), req.runId) });
      await new Promise<void>((resolve) => {
        const onRun = (run: runsPb.Run) => write({ run });
        watch.on(`run:${req.runId}`, onRun);
        const done = () => {
          watch.off(`run:${req.runId}`, onRun);
          resolve();
        };
        watch.once(`end:${req.runId}`, done);
        ctx.signal.addEventListener("abort", done, { once: true });
      });
    }),
    // Like the scheduler: live first, then the catch-up, then each change of the project's runs.
    watchRuns: serverStream(log, "WatchRuns", async (req: runsPb.WatchRunsRequest, ctx, write: (m: runsPb.WatchRunsResponse) => void) => {
      const project = projectOf(ctx.metadata);
      watchRunsCalls.push(req);
      const mine = (r: runsPb.Run) => r.project === project && (!req.app || r.app === req.app);
      const onChange = (run: runsPb.Run) => {
        if (mine(run)) write({ run });
      };
      watch.on("changed", onChange);
      try {
        write({ run: undefined });
        const after = req.createdAfter?.getTime();
        const fresh = after === undefined ? [] : [...runs.values()].filter((r) => mine(r) && (r.createdAt?.getTime() ?? 0) > after);
        for (const run of fresh.sort((a, b) => (a.createdAt?.getTime() ?? 0) - (b.createdAt?.getTime() ?? 0))) write({ run });
        for (const id of req.runIds) {
          const run = runs.get(id);
          if (run && mine(run)) write({ run });
        }
        await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
      } finally {
        watch.off("changed", onChange);
      }
    }),
  });
  scheduler.add(appsPb.AppServiceService, {
    putApp: unary(log, "PutApp", async (req: appsPb.PutAppRequest, ctx) => {
      const project = projectOf(ctx.metadata);
      const app = appsPb.App.fromPartial({ ...req.app, createdAt: new Date(), updatedAt: new Date() });
      const key = `${project}/${app.name}`;
      const created = !apps.has(key);
      apps.set(key, app);
      return { app, created };
    }),
    getApp: unary(log, "GetApp", async (req: appsPb.GetAppRequest, ctx) => {
      const app = apps.get(`${projectOf(ctx.metadata)}/${req.name}`);
      if (!app) throw new LonghaulError("not_found", `app ${req.name} not found`);
      return { app };
    }),
    deleteApp: unary(log, "DeleteApp", async (req: appsPb.DeleteAppRequest, ctx) => {
      if (!apps.delete(`${projectOf(ctx.metadata)}/${req.name}`)) {
        throw new LonghaulError("not_found", `app ${req.name} not found`);
      }
      return {};
    }),
    listApps: unary(log, "ListApps", async (_req: appsPb.ListAppsRequest, ctx) => {
      const prefix = `${projectOf(ctx.metadata)}/`;
      return { apps: [...apps.entries()].filter(([k]) => k.startsWith(prefix)).map(([, a]) => a) };
    }),
  });

  const mesh = { invokeScript: echoScript, streamSubmits: 0 } as { invokeScript: InvokeScript; streamSubmits: number };
  const invoker = createGrpcServer({ log, address: "127.0.0.1:0", internalToken: TOKEN });
  invoker.add(
    invokerPb.InvokerServiceService,
    {
      invoke: (call: ServerDuplexStream<invokerPb.InvokeRequest, invokerPb.InvokeResponse>) => {
        const received: ReceivedInvoke = { head: invokerPb.InvokeHead.fromPartial({}), body: Buffer.alloc(0), cancelled: false };
        invokes.push(received);
        const chunks: Buffer[] = [];
        call.on("cancelled", () => (received.cancelled = true));
        call.on("error", () => undefined);
        call.on("data", (msg: invokerPb.InvokeRequest) => {
          const part = msg.part;
          if (part?.$case === "head") received.head = part.value;
          else if (part?.$case === "bodyChunk") chunks.push(part.value);
          else if (part?.$case === "end") {
            received.body = Buffer.concat(chunks);
            mesh.invokeScript(received, (m) => {
              if (!received.cancelled) call.write(m);
            }).then(
              () => call.end(),
              () => call.end(),
            );
          }
        });
      },
    },
    { internal: true },
  );

  const notifier = createGrpcServer({ log, address: "127.0.0.1:0", internalToken: TOKEN });
  const delivery = (runId: string): notifierPb.Delivery =>
    notifierPb.Delivery.fromPartial({ runId, webhookId: `msg_${runId}`, url: "https://hooks.example/x", state: "delivered", attemptsMade: 1 });
  notifier.add(
    notifierPb.NotifierInternalServiceService,
    {
      getWebhookSecret: unary(log, "GetWebhookSecret", async (req: notifierPb.GetWebhookSecretRequest) => ({
        secret: `whsec_${req.project}`,
        previousSecret: "",
      })),
      rotateWebhookSecret: unary(log, "RotateWebhookSecret", async (req: notifierPb.RotateWebhookSecretRequest) => ({
        secret: `whsec_${req.project}_2`,
        previousSecret: `whsec_${req.project}`,
        previousExpiresAt: new Date("2030-01-01T00:00:00Z"),
      })),
      listDeliveries: unary(log, "ListDeliveries", async (req: notifierPb.ListDeliveriesRequest) => ({
        delivery: delivery(req.runId),
      })),
      redeliver: unary(log, "Redeliver", async (req: notifierPb.RedeliverRequest) => ({
        delivery: { ...delivery(req.runId), state: "pending" },
      })),
    },
    { internal: true },
  );

  const servers: GrpcServer[] = [scheduler, invoker, notifier];
  const ports = await Promise.all(servers.map((s) => s.start()));
  for (const s of servers) s.setServing(true);

  return Object.assign(mesh, {
    schedulerAddr: `127.0.0.1:${ports[0]}`,
    invokerAddr: `127.0.0.1:${ports[1]}`,
    notifierAddr: `127.0.0.1:${ports[2]}`,
    submitted,
    runs,
    results,
    apps,
    invokes,
    watch,
    submitErrors,
    inputs,
    listCalls,
    watchRunsCalls,
    addRun,
    async stop() {
      await Promise.all(servers.map((s) => s.stop(100)));
    },
  });
}

/** Default invoker answer: 200, the request's content type, the request body back. */
export const echoScript: InvokeScript = async (received, send) => {
  const ct = received.head.headers.find((h) => h.name.toLowerCase() === "content-type");
  send({
    part: {
      $case: "head",
      value: { statusCode: 200, headers: [{ name: "content-type", value: ct?.value ?? "application/octet-stream" }, { name: "x-app", value: "echo" }] },
    },
  });
  if (received.body.length > 0) send({ part: { $case: "bodyChunk", value: received.body } });
};
