/**
 * Longhaul's domain rules, in one place and free of any transport or runtime
 * dependency (the dashboard's browser modules import it too): run statuses
 * and their sets, the 12-hour limit, the success rule, how an app's URL is
 * joined, the id pattern, Retry-After, backoff, bearer tokens, and which headers and query
 * parameters hold secrets (masked wherever a stored request is shown).
 */
export * from "./run-status.js";
export * from "./ids.js";
export * from "./limits.js";
export * from "./app-url.js";
export * from "./retry-after.js";
export * from "./backoff.js";
export * from "./bearer.js";
export * from "./labels.js";
export * from "./compat.js";
export * from "./secret-mask.js";
