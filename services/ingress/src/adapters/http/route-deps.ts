import type { Authenticator } from "../../core/auth.js";
import type { MeshPorts } from "../../core/ports.js";
import type { HttpMetrics } from "./http-metrics.js";

/** Limits of the HTTP API, from config. */
export interface HttpLimits {
  /** Largest async body (and JSON body) accepted; more is a 413. */
  maxBodyBytes: number;
  /** Seconds between SSE heartbeat comments. */
  sseHeartbeatSeconds: number;
  /** Longest one SSE stream stays open before the client must reconnect. */
  sseMaxSeconds: number;
  /** Runs a project feed (`GET /v1/events`) may name with `run=` to catch up on. */
  feedMaxWatched: number;
}

/** What every group of routes is built from. */
export interface RouteDeps {
  ports: MeshPorts;
  authenticator: Authenticator;
  metrics: HttpMetrics;
  limits: HttpLimits;
  /** Key that checks signed result links (`resultUrlKey(LONGHAUL_INTERNAL_TOKEN)`). */
  resultUrlKey: Buffer;
  now: () => Date;
}
