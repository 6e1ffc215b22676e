import { isCompatRun } from "@longhaul/shared/domain";
import type { Logger } from "@longhaul/shared/logger";
import type { DispatchRef, EndedRun } from "./model.js";
import { isTerminal } from "./model.js";
import type { EventBus, Handoff, SchedulerMetrics, SchedulerStore } from "./ports.js";

/** Largest app answer carried in a `run.finished` event. */
export const INLINE_DELIVERY_MAX_BYTES = 64 * 1024;

/** Tunables of the scheduler core, from config. */
export interface SchedulerSettings {
  leaseSeconds: number;
  maxRequestBytes: number;
  allowPrivateWebhooks: boolean;
  maxQueuedPerApp: number;
  idempotencyTtlSeconds: number;
  redispatchAfterSeconds: number;
  webhookRepublishAfterSeconds: number;
  /** Bodies are dropped this long after a run ends. */
  retentionSeconds: number;
  /** Whole runs are deleted this long after they end. */
  runRetentionSeconds: number;
  /** Time between two retention passes (each starts with one index-only probe). */
  retentionIntervalMs: number;
  authCacheMs: number;
}

export interface SchedulerDeps {
  store: SchedulerStore;
  bus: EventBus;
  metrics: SchedulerMetrics;
  settings: SchedulerSettings;
  log: Logger;
  random?: () => number;
  /** Brings the reconciler back to its full rate (a retry was scheduled). Set by main. */
  wakeReconciler?: () => void;
  /** Invokers that take runs at submit (Handoff streams); without it every run is dispatched. */
  handoff?: Handoff;
}

/**
 * Publishes what a commit implies. Publishing happens after the commit (the
 * run is stored first, always); a lost publish is repaired by the reconciler.
 */
export function createEffects({ bus, log, metrics }: SchedulerDeps) {
  return {
    async dispatched(refs: DispatchRef[], options: { republish?: boolean } = {}): Promise<void> {
      if (refs.length === 0) return;
      const published = bus.publishDispatch(refs, options);
      // Sent before the dispatch is acknowledged, so that notices and dispatch
      // leave in one socket write (the row says dispatched already).
      for (const r of refs) bus.publishChanged(r.project, r.runId, "dispatched");
      await published.catch((err: unknown) => log.warn({ err, runs: refs.length }, "dispatch publish failed; the reconciler will republish"));
    },
    async changed(run: EndedRun): Promise<void> {
      bus.publishChanged(run.project_id, run.id, run.status);
      if (!isTerminal(run.status)) return;
      metrics.runFinished(run.app, run.status);
      if (!run.webhook_url) return;
      const body = run.response_body ?? Buffer.alloc(0);
      // A small answer travels in the event; a large one is fetched by the notifier (GetDeliveryInput),
      // as is a compatibility API's run, whose webhook body needs its labels, times and request.
      const delivery =
        body.length <= INLINE_DELIVERY_MAX_BYTES && !isCompatRun(run.labels)
          ? {
              webhookUrl: run.webhook_url,
              statusCode: run.status_code ?? 0,
              contentType: run.response_headers?.find((h) => h.name.toLowerCase() === "content-type")?.value ?? "",
              body,
              bodyTruncated: run.response_truncated,
              errorCode: run.error_code ?? "",
              errorMessage: run.error_message ?? "",
            }
          : undefined;
      await bus
        .publishFinished({ id: run.id, project: run.project_id, app: run.app, status: run.status, traceparent: run.traceparent, ...(delivery ? { delivery } : {}) })
        .catch((err: unknown) => log.warn({ err, run_id: run.id }, "finished publish failed; the reconciler will republish"));
    },
  };
}

export type Effects = ReturnType<typeof createEffects>;
