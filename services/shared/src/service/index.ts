/** What every service process shares at its edges: the bootstrap, health that follows dependencies, and shutdown on signals. */
export * from "./dependency-health.js";
export * from "./run-service.js";
export * from "./shutdown.js";
