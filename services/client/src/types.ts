import type { components } from "./gen/openapi.js";

/** The API's objects, as generated from its OpenAPI document (gen/openapi.ts). */
type Schemas = components["schemas"];

export type Run = Schemas["Run"];
export type RunStatus = Schemas["RunStatus"];
export type WebhookState = Schemas["WebhookState"];
export type Attempt = Schemas["Attempt"];
export type RunList = Schemas["RunList"];
export type RunResult = Schemas["RunResult"];
export type RunResultPreview = Schemas["RunResultPreview"];
export type RunRequest = Schemas["RunRequest"];
export type App = Schemas["App"];
export type AppInput = Schemas["AppInput"];
export type AppOutcomes = Schemas["AppOutcomes"];
export type Delivery = Schemas["Delivery"];
export type WebhookSecret = Schemas["WebhookSecret"];
export type Stats = Schemas["Stats"];
export type RetryRunsFilter = Schemas["RetryRunsFilter"];
export type RetriedRuns = Schemas["RetriedRuns"];

/** The statuses after which a run changes no more. */
export const FINISHED_STATUSES: ReadonlySet<RunStatus> = new Set<RunStatus>(["succeeded", "failed", "timed_out", "cancelled", "expired"]);

/** True once a run can change no more. */
export function isFinished(run: Pick<Run, "status">): boolean {
  return FINISHED_STATUSES.has(run.status);
}

/** The operator's API (`/v1/admin/...`) and a project's own keys (`/v1/keys`). */
export type ProjectLimits = Schemas["ProjectLimits"];
export type Project = Schemas["Project"];
export type ApiKey = Schemas["ApiKey"];
export type CreatedApiKey = Schemas["CreatedApiKey"];
export type KeyScope = ApiKey["scopes"][number];
