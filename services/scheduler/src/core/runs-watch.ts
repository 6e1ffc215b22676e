import { sleep } from "@longhaul/shared/timers";
import { LonghaulError } from "@longhaul/shared/errors";
import type { RunRecord } from "./model.js";
import type { EventBus, SchedulerMetrics, SchedulerStore } from "./ports.js";
import { checkName } from "./validation.js";

/**
 * A project-wide watch of runs (RunService/WatchRuns): every change notice of
 * the project's runs (`<p>.run.changed.<project>.<run_id>`) marks the run as
 * changed; the changed runs are read back together, at most once per
 * coalescing window, in one `id in (...)` query. A burst of notices (a busy
 * project, or one run going dispatched → running within milliseconds) costs
 * one read, and each run is sent once, in its latest state.
 */

/** Changed runs are read at most this often. */
export const WATCH_RUNS_COALESCE_MS = 150;
/** Most run ids a watch may name to catch up on. */
export const MAX_WATCH_RUN_IDS = 1000;
/** Runs sent for `createdAfter` at most (the newest). */
const CREATED_AFTER_LIMIT = 100;
/** Ids per read; more changed runs than this in one window take several reads. */
const READ_BATCH = 500;
/** Runs whose last sent state a watch remembers (to drop repeats); the oldest are forgotten. */
const REMEMBERED = 10_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface WatchRunsQuery {
  /** Only this app's runs; "" for all. */
  app: string;
  /** Runs to send as they are now, once the watch listens. */
  runIds: readonly string[];
  /** Also send the runs created after this, once the watch listens. */
  createdAfter: Date | undefined;
}

export interface WatchRunsOutput {
  /** The watch listens: every later change will be sent. Called first, once. */
  live(): void;
  run(run: RunRecord): void;
}

/** What a client sees change in a run; a run whose key did not change is not sent again. */
function visibleState(r: RunRecord): string {
  const t = (d: Date | null) => d?.getTime() ?? "";
  return [r.status, r.attempt, r.webhook_state, r.status_code ?? "", r.error_code ?? "", t(r.not_before), t(r.dispatched_at), t(r.started_at), t(r.finished_at)].join("|");
}

/** Checks the query; throws invalid_argument. Ids come back lowercased. */
export function checkWatchRunsQuery(q: WatchRunsQuery): WatchRunsQuery {
  if (q.app) checkName("app", q.app);
  if (q.runIds.length > MAX_WATCH_RUN_IDS) {
    throw new LonghaulError("invalid_argument", `run_ids: at most ${MAX_WATCH_RUN_IDS}`);
  }
  for (const id of q.runIds) {
    if (!UUID.test(id)) throw new LonghaulError("invalid_argument", `run_ids: ${JSON.stringify(id.slice(0, 40))} is not a run id`);
  }
  return { ...q, runIds: q.runIds.map((id) => id.toLowerCase()) };
}

/**
 * Streams the project's changed runs to `out` until `signal` aborts. Rejects
 * when a read fails (Postgres down): the notices meanwhile are lost, so the
 * client must reconnect and list again rather than go on with a gap.
 */
export async function watchProjectRuns(
  deps: { store: SchedulerStore; bus: EventBus; metrics?: Pick<SchedulerMetrics, "watchRead"> },
  project: string,
  query: WatchRunsQuery,
  signal: AbortSignal,
  out: WatchRunsOutput,
  options: { coalesceMs?: number } = {},
): Promise<void> {
  const q = checkWatchRunsQuery(query);
  const coalesceMs = options.coalesceMs ?? WATCH_RUNS_COALESCE_MS;
  const pending = new Set<string>(q.runIds);
  const lastSent = new Map<string, string>();
  let wake: (() => void) | undefined;

  const send = (run: RunRecord) => {
    if (q.app && run.app !== q.app) return;
    const key = visibleState(run);
    if (lastSent.get(run.id) === key) return;
    // Delete first so the entry moves to the end: the map forgets the least recently sent.
    lastSent.delete(run.id);
    lastSent.set(run.id, key);
    if (lastSent.size > REMEMBERED) lastSent.delete(lastSent.keys().next().value as string);
    out.run(run);
  };

  // Subscribe before anything is read or announced, so that no change falls in between.
  const unsubscribe = deps.bus.watchProject(project, (runId) => {
    pending.add(runId);
    wake?.();
  });
  try {
    await deps.bus.watchesReady();
    out.live();
    if (q.createdAfter) {
      const fresh = await deps.store.listRuns({ project, app: q.app || undefined, createdAfter: q.createdAfter, limit: CREATED_AFTER_LIMIT });
      for (const run of fresh.reverse()) send(run);
    }
    let lastRead = 0;
    while (!signal.aborted) {
      if (pending.size === 0) {
        await new Promise<void>((resolve) => {
          const done = () => {
            signal.removeEventListener("abort", done);
            wake = undefined;
            resolve();
          };
          wake = done;
          signal.addEventListener("abort", done, { once: true });
        });
        continue;
      }
      // At most one read per window; a notice after a quiet spell is read at once.
      const wait = lastRead + coalesceMs - Date.now();
      if (wait > 0) {
        await sleep(wait, signal);
        continue;
      }
      lastRead = Date.now();
      const ids = [...pending];
      pending.clear();
      for (let i = 0; i < ids.length && !signal.aborted; i += READ_BATCH) {
        const runs = await deps.store.findRuns(project, ids.slice(i, i + READ_BATCH));
        deps.metrics?.watchRead("project");
        for (const run of runs) send(run);
      }
    }
  } finally {
    unsubscribe();
  }
}
