import { LonghaulError } from "@longhaul/shared/errors";
import { runsPb } from "@longhaul/shared/proto";
import { answerValue } from "../../core/compat-output.js";
import type { Caller } from "../../core/ports.js";
import { cogOutput, parsePredictionRequest, preferWaitSeconds, prediction } from "../../core/replicate.js";
import { compatRoute, finishedAnswer, runStatusName, waitForRun } from "./compat-routes.js";
import { readJson, sendJson, type ErrorAnswer } from "./http-io.js";
import { runIdParam } from "./run-routes.js";
import type { RequestContext, Route } from "./router.js";
import type { RouteDeps } from "./route-deps.js";

/** The label that marks a run made through this API (the listing shows only those). */
const PREDICTION_LABEL = { replicate: "prediction" };
const PAGE_SIZE = 100;

const TITLES: Record<number, string> = {
  400: "Bad request",
  401: "Unauthenticated",
  403: "Forbidden",
  404: "Not found",
  409: "Conflict",
  413: "Request too large",
  422: "Invalid input",
  429: "Too many requests",
  500: "Internal server error",
  503: "Service unavailable",
};

/** Replicate answers errors as RFC 9457 problem details: `{"title","detail","status"}`. */
function sendReplicateError(ctx: RequestContext, a: ErrorAnswer): void {
  const body = JSON.stringify({ title: TITLES[a.status] ?? "Error", detail: a.shown.message, status: a.status });
  ctx.res.writeHead(a.status, {
    ...a.headers,
    "content-type": "application/problem+json",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  ctx.res.end(body);
}

/** The gateway as the client reached it, for the prediction's absolute `urls`. */
function baseUrl(ctx: RequestContext): string {
  const proto = String(ctx.req.headers["x-forwarded-proto"] ?? "http").split(",")[0]!.trim();
  return `${proto}://${ctx.req.headers.host ?? "localhost"}`;
}

/** What the app was sent (`{"input": …}`), read back from the stored request. */
async function storedInput(deps: RouteDeps, caller: Caller, runId: string, signal: AbortSignal): Promise<unknown> {
  const input = await deps.ports.runs.getRunInput(caller, runId, { signal });
  if (!input.bodyStored || !input.request) return null;
  const sent = answerValue(input.request.body);
  return sent !== null && typeof sent === "object" && "input" in sent ? (sent as { input: unknown }).input : sent;
}

async function predictionOf(deps: RouteDeps, ctx: RequestContext, caller: Caller, run: runsPb.Run, input?: unknown) {
  const answer = await finishedAnswer(deps, caller, run, ctx.signal);
  return prediction(run, runStatusName(run.status), baseUrl(ctx), {
    input: input === undefined ? await storedInput(deps, caller, run.id, ctx.signal) : input,
    output: "output" in answer ? cogOutput(answer.output) : undefined,
    error: answer.error ?? null,
  });
}

/**
 * Replicate's predictions API at `/replicate/v1/...`
 * (replicate.com/docs/reference/http), so Replicate's clients work with a new
 * base URL (`new Replicate({ auth, baseUrl: "<gateway>/replicate/v1" })`).
 * `version` (or the model's `name`) names the app; the app receives
 * `{"input": …}` as a `POST` to `{app url}/predictions`, as a Cog model does.
 * A `webhook` gets the app's answer when the run finishes (Longhaul's
 * webhook: the `completed` event only; other `webhook_events_filter`
 * values are accepted and ignored).
 */
export function replicateRoutes(deps: RouteDeps): Route[] {
  const { runs } = deps.ports;
  const route = (method: string, pattern: string, scope: "invoke" | "read", handler: (ctx: RequestContext, caller: Caller) => Promise<void>) =>
    compatRoute(deps, sendReplicateError, { method, pattern, scope, handler });

  const create = async (ctx: RequestContext, caller: Caller, appFromPath?: string) => {
    const req = parsePredictionRequest(await readJson(ctx.req, deps.limits.maxBodyBytes), appFromPath);
    const wait = preferWaitSeconds(String(ctx.req.headers.prefer ?? ""));
    const res = await runs.submitRun(
      caller,
      runsPb.SubmitRunRequest.fromPartial({
        app: req.app,
        request: {
          method: "POST",
          path: "/predictions",
          query: "",
          headers: [{ name: "content-type", value: "application/json" }],
          body: Buffer.from(JSON.stringify({ input: req.input })),
        },
        webhookUrl: req.webhook ?? "",
        labels: PREDICTION_LABEL,
      }),
    );
    deps.metrics.runsAccepted.inc({ existing: String(res.existing) });
    const run = wait > 0 ? await waitForRun(deps, caller, res.runId, wait * 1000, ctx.signal) : await runs.getRun(caller, res.runId, 0, { signal: ctx.signal });
    const body = await predictionOf(deps, ctx, caller, run, req.input);
    sendJson(ctx.res, 201, body, { location: (body.urls as { get: string }).get });
  };

  return [
    route("POST", "/replicate/v1/predictions", "invoke", (ctx, caller) => create(ctx, caller)),
    route("POST", "/replicate/v1/models/:owner/:name/predictions", "invoke", (ctx, caller) => create(ctx, caller, ctx.params.name!)),
    route("GET", "/replicate/v1/predictions/:id", "read", async (ctx, caller) => {
      const run = await runs.getRun(caller, runIdParam(ctx), 0, { signal: ctx.signal });
      sendJson(ctx.res, 200, await predictionOf(deps, ctx, caller, run));
    }),
    route("POST", "/replicate/v1/predictions/:id/cancel", "invoke", async (ctx, caller) => {
      const id = runIdParam(ctx);
      let run = await runs.getRun(caller, id, 0, { signal: ctx.signal });
      // A finished prediction is answered as it is (Replicate does the same).
      try {
        run = await runs.cancelRun(caller, id);
      } catch (err) {
        if (!(err instanceof LonghaulError && err.code === "conflict")) throw err;
        run = await runs.getRun(caller, id, 0, { signal: ctx.signal });
      }
      sendJson(ctx.res, 200, await predictionOf(deps, ctx, caller, run));
    }),
    route("GET", "/replicate/v1/predictions", "read", async (ctx, caller) => {
      const cursor = ctx.query.get("cursor") ?? "";
      const page = await runs.listRuns(caller, runsPb.ListRunsRequest.fromPartial({ labels: PREDICTION_LABEL, limit: PAGE_SIZE, cursor }), {
        signal: ctx.signal,
      });
      const base = baseUrl(ctx);
      sendJson(ctx.res, 200, {
        previous: null,
        next: page.nextCursor ? `${base}/replicate/v1/predictions?cursor=${encodeURIComponent(page.nextCursor)}` : null,
        // As Replicate's listing: no input or output here; GET the prediction for them.
        results: page.runs.map((run) => prediction(run, runStatusName(run.status), base, { input: {} })),
      });
    }),
    // Anything else under /replicate is Replicate's 404, not Longhaul's.
    route("*", "/replicate/*", "read", async (ctx) => {
      throw new LonghaulError("not_found", `no such endpoint: ${ctx.req.method ?? "GET"} ${ctx.req.url?.split("?")[0] ?? ""}`);
    }),
  ];
}
