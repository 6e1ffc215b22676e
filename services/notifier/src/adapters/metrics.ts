import { Counter, Gauge, Histogram, type Registry } from "@longhaul/shared/metrics";
import type { NotifierMetrics } from "../core/ports.js";

/**
 * The notifier's Prometheus metrics: attempts by outcome, their duration, and
 * (read from Postgres at each scrape) how many deliveries wait.
 */
export function createNotifierMetrics(
  registry: Registry,
  countPending: () => Promise<number>,
  /** True on the one copy that exports the count all copies share (the metrics lease's holder). */
  exportShared: () => boolean = () => true,
): NotifierMetrics {
  const attempts = new Counter({
    name: "longhaul_webhook_attempts_total",
    help: "Webhook attempts, by what they left the delivery in: delivered, retrying or failed.",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "longhaul_webhook_attempt_duration_seconds",
    help: "Time of one webhook POST, connect to last byte read.",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30],
    registers: [registry],
  });
  new Gauge({
    name: "longhaul_webhook_deliveries_pending",
    help: "Webhook deliveries not yet delivered nor failed (all notifiers).",
    registers: [registry],
    async collect() {
      if (!exportShared()) {
        // A gauge without labels always shows a value: 0 here, so that a sum over copies is the count.
        this.reset();
        return;
      }
      // An unreachable database keeps the last value rather than failing the scrape.
      const n = await countPending().catch(() => undefined);
      if (n !== undefined) this.set(n);
    },
  });
  return {
    attempt(outcome, durationMs) {
      attempts.inc({ outcome });
      duration.observe(durationMs / 1000);
    },
  };
}
