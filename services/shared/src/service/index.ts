/** What every service process shares at its edges: health that follows dependencies, and shutdown on signals. */
export * from "./dependency-health.js";
export * from "./shutdown.js";
