import { Counter, Gauge, Histogram, type Registry } from "@longhaul/shared/metrics";
import type { InvokerMetrics } from "./core/ports.js";

/**
 * Prometheus metrics of the invoker, registered on `registry`:
 * `longhaul_invoker_calls_in_flight`, `longhaul_invoker_calls_total{mode,outcome}`,
 * `longhaul_invoker_call_duration_seconds{mode,outcome}`,
 * `longhaul_invoker_claim_failures_total{code}`, `longhaul_invoker_complete_failures_total{code}`.
 */
export function createInvokerMetrics(registry: Registry): InvokerMetrics {
  const inFlight = new Gauge({
    name: "longhaul_invoker_calls_in_flight",
    help: "Calls to apps held now",
    labelNames: ["mode"],
    registers: [registry],
  });
  const calls = new Counter({
    name: "longhaul_invoker_calls_total",
    help: "Calls to apps that ended, by how",
    labelNames: ["mode", "outcome"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "longhaul_invoker_call_duration_seconds",
    help: "Time from the start of a call to its end",
    labelNames: ["mode", "outcome"],
    // From fast APIs to 12-hour jobs.
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600],
    registers: [registry],
  });
  const claimFailures = new Counter({
    name: "longhaul_invoker_claim_failures_total",
    help: "ClaimRun calls that did not claim, by error code",
    labelNames: ["code"],
    registers: [registry],
  });
  const completeFailures = new Counter({
    name: "longhaul_invoker_complete_failures_total",
    help: "CompleteRun calls that failed, by error code",
    labelNames: ["code"],
    registers: [registry],
  });
  inFlight.set({ mode: "async" }, 0);
  inFlight.set({ mode: "sync" }, 0);
  return {
    callStarted: (mode) => inFlight.inc({ mode }),
    callEnded(mode, outcome, seconds) {
      inFlight.dec({ mode });
      calls.inc({ mode, outcome });
      duration.observe({ mode, outcome }, seconds);
    },
    claimFailed: (code) => claimFailures.inc({ code }),
    completeFailed: (code) => completeFailures.inc({ code }),
  };
}
