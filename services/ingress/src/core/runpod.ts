import { z } from "@longhaul/shared/config";
import { LonghaulError } from "@longhaul/shared/errors";
import type { runsPb } from "@longhaul/shared/proto";
import { isRunpodFinished, msBetween, runpodStatus } from "@longhaul/shared/domain";

/**
 * RunPod serverless's job API over Longhaul runs (docs.runpod.io,
 * "Serverless endpoints: operations"): one app is one endpoint, one run one
 * job. The job id is the id the app receives in `{"id","input"}`; as the
 * run's id is only known once it is stored, the job id is made here and
 * kept on the run as the label `runpod_job` (a retry keeps it: the job's
 * newest run answers for it, as a retried RunPod job keeps its id).
 */

/**
 * Label of a job sent with `policy.ttl`: when its lifetime ends, in ms since
 * the epoch (submit + ttl).
 */
export const RUNPOD_EXPIRES_LABEL = "runpod_expires";

/** The longest `policy.ttl` RunPod accepts: 7 days. */
export const RUNPOD_MAX_TTL_MS = 7 * 24 * 60 * 60 * 1000;

export { RUNPOD_JOB_LABEL, isRunpodFinished, runpodStatus, type RunpodStatus } from "@longhaul/shared/domain";

/** The body of `POST /v2/{endpoint}/run` and `/runsync` (RunPod's EndpointInputPayload). */
const runRequestSchema = z
  .object({
    input: z.unknown().refine((v) => v !== undefined, "input is required"),
    webhook: z.string().url().optional(),
    webhookV2: z.string().url().optional(),
    policy: z
      .object({
        executionTimeout: z.number().int().min(1000).max(43_200_000).optional(),
        // RunPod's own upper bound: a week.
        ttl: z.number().int().min(1000).max(RUNPOD_MAX_TTL_MS).optional(),
        lowPriority: z.boolean().optional(),
      })
      .passthrough()
      .optional(),
    s3Config: z.unknown().optional(),
  })
  .passthrough();

/** A job request, checked. */
export interface RunpodJobRequest {
  input: unknown;
  webhook: string | undefined;
  /** From `policy.executionTimeout` (ms), rounded up to seconds. */
  timeoutSeconds: number;
  /** `policy.lowPriority`: below the app's other runs. */
  priority: number;
  /** `policy.ttl`: the job's whole lifetime from submit, ms (queue and execution). */
  ttlMs: number | undefined;
}

/** Parses a run request; a 400 naming the first bad field. */
export function parseRunpodRequest(body: unknown): RunpodJobRequest {
  const parsed = runRequestSchema.safeParse(body);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first?.path.length ? `${first.path.join(".")}: ` : "";
    throw new LonghaulError("invalid_argument", `${where}${first?.message ?? "bad request"}`);
  }
  const r = parsed.data;
  const ms = r.policy?.executionTimeout;
  return {
    input: r.input,
    webhook: r.webhookV2 ?? r.webhook,
    timeoutSeconds: ms === undefined ? 0 : Math.ceil(ms / 1000),
    priority: r.policy?.lowPriority ? -10 : 0,
    ttlMs: r.policy?.ttl,
  };
}

/**
 * The run's timeout for a job: `policy.executionTimeout`, else the app's, and
 * never past `policy.ttl` (RunPod's ttl is the job's whole lifetime, so its
 * execution cannot outlast it).
 */
export function runpodTimeoutSeconds(req: RunpodJobRequest, appTimeoutSeconds: number): number {
  if (req.ttlMs === undefined) return req.timeoutSeconds;
  return Math.min(req.timeoutSeconds || appTimeoutSeconds, Math.ceil(req.ttlMs / 1000));
}

/**
 * The run's own queue deadline for a job sent with `policy.ttl`, in the whole
 * seconds the scheduler takes: rounded down (at least 1), so the job is never
 * started after its ttl. 0 without a ttl.
 */
export function runpodQueueTtlSeconds(req: RunpodJobRequest): number {
  return req.ttlMs === undefined ? 0 : Math.max(1, Math.floor(req.ttlMs / 1000));
}

/**
 * The queue deadline of a job's retry (`/retry`), in whole seconds from now;
 * 0 for none. The first run's own deadline is given again (the run stores
 * only the deadline: its length is `expires_at - created_at`), but a job sent
 * with `policy.ttl` keeps its lifetime, as on RunPod, where the ttl counts
 * from the job's submit: its retry must start before the job's end
 * (`runpod_expires`), rounded down like the first deadline. A job with less
 * than a second left could only start past its ttl: 404, as an expired one.
 */
export function runpodRetryQueueTtlSeconds(run: Pick<runsPb.Run, "labels" | "createdAt" | "expiresAt">, nowMs: number): number {
  const first = msBetween(run.createdAt, run.expiresAt);
  const own = first === undefined ? 0 : Math.max(1, Math.round(first / 1000));
  const end = run.labels?.[RUNPOD_EXPIRES_LABEL];
  if (end === undefined || !/^\d+$/.test(end)) return own;
  const left = Math.floor((Number(end) - nowMs) / 1000);
  if (left < 1) throw new LonghaulError("not_found", "the job ends within a second: a retry could not start within its policy.ttl");
  return own === 0 ? left : Math.min(own, left);
}

/**
 * True when a job sent with `policy.ttl` has outlived it. Such a job is gone,
 * as on RunPod: it answers 404, and a job still queued or in progress is
 * cancelled first (it must not start, nor run on, past its lifetime).
 */
export function isRunpodExpired(labels: Record<string, string> | undefined, nowMs: number): boolean {
  const raw = labels?.[RUNPOD_EXPIRES_LABEL];
  return raw !== undefined && /^\d+$/.test(raw) && nowMs >= Number(raw);
}

/** The body the app receives: `{"id","input"}` (RunPod's handler event). */
export function runpodAppBody(jobId: string, input: unknown): Buffer {
  return Buffer.from(JSON.stringify({ id: jobId, input }));
}

/** A job as RunPod answers it. `output` / `error` only once the run is finished. */
export function runpodJob(
  jobId: string,
  run: runsPb.Run,
  statusName: string,
  answer?: { output?: unknown; error?: string },
): Record<string, unknown> {
  const status = runpodStatus(statusName);
  const job: Record<string, unknown> = { id: jobId, status };
  const delay = msBetween(run.createdAt, run.startedAt ?? (isRunpodFinished(status) ? run.finishedAt : undefined));
  if (delay !== undefined) job.delayTime = delay;
  const execution = msBetween(run.startedAt, run.finishedAt);
  if (execution !== undefined) job.executionTime = execution;
  if (run.attempt > 1) job.retries = run.attempt - 1;
  if (answer?.output !== undefined) job.output = answer.output;
  if (answer?.error !== undefined) job.error = answer.error;
  return job;
}
