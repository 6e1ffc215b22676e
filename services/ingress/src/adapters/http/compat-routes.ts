import { LonghaulError } from "@longhaul/shared/errors";
import { runsPb } from "@longhaul/shared/proto";
import { answerValue } from "../../core/compat-output.js";
import type { Caller, Scope } from "../../core/ports.js";
import { errorAnswer, type ErrorAnswer } from "./http-io.js";
import { isFinished, runStatusName } from "./json-mapping.js";
import type { RequestContext, Route } from "./router.js";
import type { RouteDeps } from "./route-deps.js";

/**
 * What the compatibility APIs (RunPod's `/v2`, Replicate's `/replicate/v1`)
 * share: each answers every error, a bad key included, in its platform's
 * shape, so the route authenticates itself instead of the router.
 */
export function compatRoute(
  deps: RouteDeps,
  sendCompatError: (ctx: RequestContext, a: ErrorAnswer) => void,
  route: { method: string; pattern: string; scope: Scope; handler: (ctx: RequestContext, caller: Caller) => Promise<void> },
): Route {
  return {
    method: route.method,
    pattern: route.pattern,
    auth: false,
    handler: async (ctx) => {
      try {
        const caller = await deps.authenticator.authenticate(ctx.req.headers.authorization);
        if (!caller.scopes.includes(route.scope)) {
          throw new LonghaulError("permission_denied", `this needs the '${route.scope}' scope`);
        }
        await route.handler(ctx, caller);
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        if (ctx.res.headersSent) {
          ctx.res.destroy();
          return;
        }
        sendCompatError(ctx, errorAnswer(ctx.res, err, ctx.log));
      }
    },
  };
}

/** The run once it is finished, or as it is after `waitMs` (long-polls of at most 60 s each). */
export async function waitForRun(deps: RouteDeps, caller: Caller, runId: string, waitMs: number, signal: AbortSignal): Promise<runsPb.Run> {
  const deadline = Date.now() + waitMs;
  let run = await deps.ports.runs.getRun(caller, runId, 0, { signal });
  while (!isFinished(run.status) && Date.now() < deadline) {
    const left = Math.ceil((deadline - Date.now()) / 1000);
    run = await deps.ports.runs.getRun(caller, runId, Math.min(60, Math.max(1, left)), { signal });
  }
  return run;
}

/** A finished run's answer: the app's JSON (or text) when it succeeded, else an error message. */
export async function finishedAnswer(
  deps: RouteDeps,
  caller: Caller,
  run: runsPb.Run,
  signal: AbortSignal,
): Promise<{ output?: unknown; error?: string }> {
  if (!isFinished(run.status)) return {};
  const status = runStatusName(run.status);
  if (status === "succeeded" || run.statusCode !== 0) {
    const res = await deps.ports.runs.getRunResult(caller, run.id, { signal });
    const value = answerValue(res.body);
    if (status === "succeeded") return { output: value };
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return { error: `the app answered ${run.statusCode}${text ? `: ${text.slice(0, 1000)}` : ""}` };
  }
  return { error: run.errorMessage || run.errorCode || status };
}

export { runStatusName };
