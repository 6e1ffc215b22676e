import {
  REPLICATE_LABEL,
  RUNPOD_JOB_LABEL,
  answerValue,
  cogOutput,
  msBetween,
  replicateStatus,
  runpodStatus,
} from "@longhaul/shared/domain";
import type { DeliveryInput } from "./ports.js";

/**
 * The webhook body of a run made through a compatibility API: what that
 * platform POSTs, so receivers written for it work unchanged. RunPod sends
 * the job object (as `GET /v2/{endpoint}/status/{id}` answers it;
 * docs.runpod.io "Webhooks"); Replicate the prediction object
 * (replicate.com/docs/topics/webhooks, the `completed` event). Undefined for
 * any other run: it gets the app's own body.
 */
export function compatWebhookBody(input: DeliveryInput, publicUrl: string): Record<string, unknown> | undefined {
  const labels = input.labels ?? {};
  const answered = input.statusCode !== 0 || input.body.byteLength > 0;
  const failure = () =>
    input.statusCode !== 0
      ? `the app answered ${input.statusCode}${input.body.byteLength ? `: ${new TextDecoder().decode(input.body).slice(0, 1000)}` : ""}`
      : input.errorMessage || input.errorCode || input.status;
  const jobId = labels[RUNPOD_JOB_LABEL];
  if (jobId) {
    const job: Record<string, unknown> = { id: jobId, status: runpodStatus(input.status) };
    const delay = msBetween(input.createdAt, input.startedAt ?? input.finishedAt);
    if (delay !== undefined) job.delayTime = delay;
    const execution = msBetween(input.startedAt, input.finishedAt);
    if (execution !== undefined) job.executionTime = execution;
    if (input.status === "succeeded") job.output = answerValue(input.body);
    else job.error = failure();
    return job;
  }
  if (labels[REPLICATE_LABEL] === "prediction") {
    const sent = answerValue(input.requestBody ?? new Uint8Array());
    const get = `${publicUrl.replace(/\/+$/, "")}/replicate/v1/predictions/${input.runId}`;
    const predictMs = msBetween(input.startedAt, input.finishedAt);
    return {
      id: input.runId,
      model: `longhaul/${input.app}`,
      version: input.app,
      input: sent !== null && typeof sent === "object" && "input" in sent ? (sent as { input: unknown }).input : sent,
      output: input.status === "succeeded" && answered ? cogOutput(answerValue(input.body)) : null,
      logs: "",
      error: input.status === "succeeded" ? null : failure(),
      status: replicateStatus(input.status),
      source: "api",
      data_removed: false,
      created_at: input.createdAt?.toISOString() ?? null,
      started_at: input.startedAt?.toISOString() ?? null,
      completed_at: input.finishedAt?.toISOString() ?? null,
      urls: { get, cancel: `${get}/cancel` },
      metrics: predictMs === undefined ? {} : { predict_time: predictMs / 1000 },
    };
  }
  return undefined;
}
