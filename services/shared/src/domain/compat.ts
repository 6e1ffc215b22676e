/**
 * The compatibility APIs' names for Longhaul's run states and answers, shared
 * by the ingress (RunPod's `/v2`, Replicate's `/replicate/v1`) and the
 * notifier (their webhook bodies).
 */

/** The label that carries a run's RunPod job id (the id its app received). */
export const RUNPOD_JOB_LABEL = "runpod_job";
/** The label of a run made through Replicate's API: `replicate=prediction`. */
export const REPLICATE_LABEL = "replicate";

/** RunPod's job statuses. */
export type RunpodStatus = "IN_QUEUE" | "IN_PROGRESS" | "COMPLETED" | "FAILED" | "CANCELLED" | "TIMED_OUT";

/** A Longhaul status name as RunPod says it; a queue TTL that ran out is RunPod's `ttl` expiry: TIMED_OUT. */
export function runpodStatus(status: string): RunpodStatus {
  switch (status) {
    case "queued":
    case "dispatched":
      return "IN_QUEUE";
    case "running":
      return "IN_PROGRESS";
    case "succeeded":
      return "COMPLETED";
    case "cancelled":
      return "CANCELLED";
    case "timed_out":
    case "expired":
      return "TIMED_OUT";
    default:
      return "FAILED";
  }
}

/** True once a job can change no more. */
export function isRunpodFinished(status: RunpodStatus): boolean {
  return status !== "IN_QUEUE" && status !== "IN_PROGRESS";
}

/** Replicate's prediction statuses. */
export type ReplicateStatus = "starting" | "processing" | "succeeded" | "failed" | "canceled";

export function replicateStatus(status: string): ReplicateStatus {
  switch (status) {
    case "queued":
    case "dispatched":
      return "starting";
    case "running":
      return "processing";
    case "succeeded":
      return "succeeded";
    case "cancelled":
      return "canceled";
    default:
      return "failed";
  }
}

/** `output` of a Cog answer is its `output` field; any other JSON answer is the output itself. */
export function cogOutput(answer: unknown): unknown {
  if (answer !== null && typeof answer === "object" && !Array.isArray(answer) && "output" in answer) {
    return (answer as { output: unknown }).output;
  }
  return answer;
}

/** An app's answer as these APIs show it: JSON when it parses as JSON, else its text; null when empty. */
export function answerValue(body: Uint8Array): unknown {
  const text = new TextDecoder().decode(body);
  if (text === "") return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Milliseconds between two optional times; undefined when either is missing. */
export function msBetween(from: Date | undefined, to: Date | undefined): number | undefined {
  return from && to ? Math.max(0, to.getTime() - from.getTime()) : undefined;
}

/** True for a run made through a compatibility API: its webhook body is that platform's. */
export function isCompatRun(labels: Readonly<Record<string, string>> | null | undefined): boolean {
  return !!labels && (RUNPOD_JOB_LABEL in labels || labels[REPLICATE_LABEL] === "prediction");
}
