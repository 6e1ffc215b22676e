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

/** The statuses after which a run changes no more. */
export const FINISHED_STATUSES: ReadonlySet<RunStatus> = new Set<RunStatus>(["succeeded", "failed", "timed_out", "cancelled", "expired"]);

/** True once a run can change no more. */
export function isFinished(run: Pick<Run, "status">): boolean {
  return FINISHED_STATUSES.has(run.status);
}

/*
 * The operator's API (`/v1/admin/...`, DESIGN.md "Projects, keys and
 * limits"). Written by hand until those routes are in the OpenAPI document.
 */

/** A project's limits; 0 = unlimited. */
export interface ProjectLimits {
  submits_per_second: number;
  burst: number;
  max_in_flight: number;
  max_queued: number;
  max_watch_streams: number;
}

/** A project as the admin API shows it. */
export interface Project {
  name: string;
  created_at: string;
  limits: ProjectLimits;
  usage: Record<string, number>;
  [more: string]: unknown;
}

/** An API key, never with its secret. */
export interface ApiKey {
  id: string;
  name: string;
  scopes: string[];
  prefix?: string;
  created_at: string;
  last_used_at?: string | null;
  [more: string]: unknown;
}

/** A key just created: the only answer that holds its secret `key`. */
export interface CreatedApiKey extends ApiKey {
  key: string;
}
