export { LonghaulClient } from "./client.js";
export type { Accepted, CallBody, CallOptions, EventsOptions, ListRunsFilter, LonghaulClientOptions, SubmitOptions, WaitOptions } from "./client.js";
export { LonghaulApiError, parseRetryAfter } from "./errors.js";
export { verifyWebhook, WebhookVerificationError } from "./webhooks.js";
export type { VerifiedWebhook, WebhookHeaders } from "./webhooks.js";
export { FINISHED_STATUSES, isFinished } from "./types.js";
export type * from "./types.js";
export type { components, paths, operations } from "./gen/openapi.js";
