import { z } from "@longhaul/shared/config";
import { LonghaulError } from "@longhaul/shared/errors";
import type { runsPb } from "@longhaul/shared/proto";
import { msBetween, replicateStatus, type ReplicateStatus } from "@longhaul/shared/domain";

/**
 * Replicate's predictions API over Longhaul runs (replicate.com/docs/reference/http):
 * a prediction is a run whose app received `{"input": …}` as a `POST` to
 * `{app url}/predictions`, as a Cog model expects.
 */

export { cogOutput, replicateStatus, type ReplicateStatus } from "@longhaul/shared/domain";

export function isReplicateFinished(status: ReplicateStatus): boolean {
  return status === "succeeded" || status === "failed" || status === "canceled";
}

const createSchema = z
  .object({
    version: z.string().min(1).optional(),
    input: z.record(z.string(), z.unknown()),
    webhook: z.string().url().optional(),
    webhook_events_filter: z.array(z.enum(["start", "output", "logs", "completed"])).optional(),
    stream: z.boolean().optional(),
  })
  .strict();

/** A create request, checked. */
export interface PredictionRequest {
  /** The app: `version` of POST /predictions, or `name` of POST /models/{owner}/{name}/predictions. */
  app: string;
  input: Record<string, unknown>;
  webhook: string | undefined;
}

/**
 * Parses a create body; `app` comes from the path for the models route. A
 * 422 (`unprocessable`) names the first bad field, as Replicate answers.
 */
export function parsePredictionRequest(body: unknown, appFromPath?: string): PredictionRequest {
  const parsed = createSchema.safeParse(body);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first?.path.length ? `${first.path.join(".")}: ` : "";
    throw new LonghaulError("unprocessable", `${where}${first?.message ?? "invalid input"}`);
  }
  const app = appFromPath ?? parsed.data.version;
  if (!app) throw new LonghaulError("unprocessable", "version: required (it names the app)");
  return { app, input: parsed.data.input, webhook: parsed.data.webhook };
}

/** `Prefer: wait` (60 s) or `Prefer: wait=N` (1..60), as Replicate's sync mode; 0 when absent. */
export function preferWaitSeconds(prefer: string | undefined): number {
  if (!prefer) return 0;
  const m = /(?:^|[,;\s])wait(?:=(\d+))?(?:$|[,;\s])/.exec(prefer);
  if (!m) return 0;
  return m[1] === undefined ? 60 : Math.min(60, Math.max(1, Number(m[1])));
}

/** A prediction as Replicate answers it. */
export function prediction(
  run: runsPb.Run,
  statusName: string,
  baseUrl: string,
  detail: { input: unknown; output?: unknown; error?: string | null },
): Record<string, unknown> {
  const iso = (d: Date | undefined) => (d ? d.toISOString() : null);
  const predictTime = msBetween(run.startedAt, run.finishedAt);
  const get = `${baseUrl}/replicate/v1/predictions/${run.id}`;
  return {
    id: run.id,
    model: `longhaul/${run.app}`,
    version: run.app,
    input: detail.input,
    output: detail.output ?? null,
    logs: "",
    error: detail.error ?? null,
    status: replicateStatus(statusName),
    source: "api",
    data_removed: false,
    created_at: iso(run.createdAt),
    started_at: iso(run.startedAt),
    completed_at: iso(run.finishedAt),
    urls: { get, cancel: `${get}/cancel`, web: `${baseUrl}/dashboard/runs/${run.id}` },
    metrics: predictTime === undefined ? {} : { predict_time: predictTime / 1000 },
  };
}
