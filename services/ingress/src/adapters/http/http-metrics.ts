import { Counter, Histogram, type Registry } from "@longhaul/shared/metrics";

/** The gateway's own Prometheus metrics, registered on the service's registry. */
export interface HttpMetrics {
  requests: Counter<"route" | "method" | "status">;
  duration: Histogram<"route" | "method">;
  runsAccepted: Counter<"existing">;
  /** Long-lived answers started: sync pass-through calls and SSE streams. */
  streamsStarted: Counter<"kind">;
}

/** Creates and registers the gateway's metrics. Route labels are patterns, never raw paths. */
export function createHttpMetrics(registry: Registry): HttpMetrics {
  return {
    requests: new Counter({
      name: "longhaul_http_requests_total",
      help: "HTTP requests answered by the gateway, by route pattern, method and status.",
      labelNames: ["route", "method", "status"],
      registers: [registry],
    }),
    duration: new Histogram({
      name: "longhaul_http_request_duration_seconds",
      help: "Time from request to the end of the answer (sync calls and SSE included).",
      labelNames: ["route", "method"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
      registers: [registry],
    }),
    runsAccepted: new Counter({
      name: "longhaul_runs_accepted_total",
      help: "Async runs answered 202; existing=true when an Idempotency-Key matched an earlier run.",
      labelNames: ["existing"],
      registers: [registry],
    }),
    streamsStarted: new Counter({
      name: "longhaul_http_streams_started_total",
      help: "Long-lived answers started: sync pass-through calls and SSE streams.",
      labelNames: ["kind"],
      registers: [registry],
    }),
  };
}
