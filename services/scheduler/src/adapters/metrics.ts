import { Counter, Gauge, Histogram, type Registry } from "@longhaul/shared/metrics";
import type { SchedulerMetrics, SchedulerStore } from "../core/ports.js";

/** Options of {@link createSchedulerMetrics}. */
export interface SchedulerMetricsOptions {
  /**
   * True on the one copy that exports gauges of state all copies share (the
   * holder of the metrics lease); the others export no sample of them.
   * @default always
   */
  exportShared?: () => boolean;
}

/**
 * Prometheus metrics of the scheduler. Queue depth is read from Postgres at
 * scrape time, by one copy only: every copy would read the same numbers, and
 * a sum over copies would count each run once per copy.
 */
export function createSchedulerMetrics(registry: Registry, store: SchedulerStore, options: SchedulerMetricsOptions = {}): SchedulerMetrics {
  const exportShared = options.exportShared ?? (() => true);
  const accepted = new Counter({ name: "longhaul_runs_accepted_total", help: "Runs accepted", labelNames: ["app"], registers: [registry] });
  const finished = new Counter({
    name: "longhaul_runs_finished_total",
    help: "Runs finished, by outcome",
    labelNames: ["app", "status"],
    registers: [registry],
  });
  const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
  const dispatchDelay = new Histogram({
    name: "longhaul_run_dispatch_delay_seconds",
    help: "Time from accept to the dispatch of the first attempt that an invoker took",
    buckets,
    registers: [registry],
  });
  const startDelay = new Histogram({
    name: "longhaul_run_start_delay_seconds",
    help: "Time from accept to an invoker's claim of the first attempt",
    buckets,
    registers: [registry],
  });
  new Gauge({
    name: "longhaul_queue_depth",
    help: "Runs waiting in the queue, by app",
    labelNames: ["project", "app", "state"],
    registers: [registry],
    async collect() {
      this.reset();
      if (!exportShared()) return;
      for (const c of await store.appCounts()) {
        this.set({ project: c.project, app: c.app, state: "queued" }, c.queued);
        this.set({ project: c.project, app: c.app, state: "in_flight" }, c.inFlight);
      }
    },
  });
  const watchReads = new Counter({
    name: "longhaul_watch_reads_total",
    help: "Reads of runs made for watchers (WatchRun, long polls: `run`; WatchRuns: `project`), shared by every watcher of a run in this process",
    labelNames: ["watch"],
    registers: [registry],
  });
  return {
    runAccepted: (app) => accepted.inc({ app }),
    watchRead: (watch) => watchReads.inc({ watch }),
    runFinished: (app, status) => finished.inc({ app, status }),
    dispatchDelay: (s) => dispatchDelay.observe(s),
    startDelay: (s) => startDelay.observe(s),
  };
}

/**
 * Gauges of this copy's watches: how many runs are watched, by how many
 * watchers (WatchRun streams and long polls) together, and how many project
 * feeds (WatchRuns) are open.
 */
export function createWatchGauges(registry: Registry, stats: () => { runs: number; watchers: number; projectWatchers: number }): void {
  new Gauge({
    name: "longhaul_watched_runs",
    help: "Runs watched on this copy (one subscription and one read per change each)",
    registers: [registry],
    collect() {
      this.set(stats().runs);
    },
  });
  new Gauge({
    name: "longhaul_run_watchers",
    help: "WatchRun streams and long polls open on this copy",
    registers: [registry],
    collect() {
      this.set(stats().watchers);
    },
  });
  new Gauge({
    name: "longhaul_project_watchers",
    help: "WatchRuns streams (project feeds) open on this copy",
    registers: [registry],
    collect() {
      this.set(stats().projectWatchers);
    },
  });
}

/**
 * `longhaul_stream_submits_total{code}`: submits answered on the gateway's
 * SubmitRuns streams, by Longhaul code (`ok` for a run accepted). They are
 * messages, not calls, so `grpc_server_handled_total` counts their streams
 * only; unary SubmitRun calls are counted there as before.
 */
export function createStreamSubmitCounter(registry: Registry): (code: string) => void {
  const counter = new Counter({
    name: "longhaul_stream_submits_total",
    help: "Submits answered on SubmitRuns streams, by Longhaul code (ok: accepted)",
    labelNames: ["code"],
    registers: [registry],
  });
  const byCode = new Map<string, ReturnType<typeof counter.labels>>();
  return (code) => {
    let c = byCode.get(code);
    if (!c) byCode.set(code, (c = counter.labels({ code })));
    c.inc();
  };
}
