import { UUID } from "@longhaul/shared/domain";
import { sleep } from "@longhaul/shared/timers";
import { LonghaulError } from "@longhaul/shared/errors";
import type { RunRecord } from "./model.js";
import type { EventBus, SchedulerMetrics, SchedulerStore } from "./ports.js";
import { checkName } from "./validation.js";

/**
 * Project-wide watches of runs (RunService/WatchRuns, which the gateway's
 * `GET /v1/events` and the dashboard stream), shared by every watch of a
 * project in this process: one subscription to the project's change notices
 * (`<p>.run.changed.<project>.<run_id>`), which mark runs as changed; the
 * changed runs are read back together, at most once per coalescing window,
 * in one `id in (...)` query, and each run is sent to every watch (each
 * keeps to its app and drops repeats). A burst of notices (a busy project,
 * or one run going dispatched → running within milliseconds) costs one read
 * however many watch it, and each watch gets each run once, in its latest
 * state. What a watch asks to catch up on (runs it names, runs created since
 * a time) is read in the same sequence of reads, for it alone.
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

interface ProjectWatcher {
  app: string;
  out: WatchRunsOutput;
  lastSent: Map<string, string>;
  /** Runs to send as they are now, in the next read. */
  named: string[];
  createdAfter: Date | undefined;
  caughtUp: boolean;
  fail(err: unknown): void;
}

interface ProjectEntry {
  project: string;
  watchers: Set<ProjectWatcher>;
  /** Watches waiting for the subscription to be confirmed, not yet attached. */
  joining: number;
  pending: Set<string>;
  wake: (() => void) | undefined;
  stop: AbortController;
  unsubscribe: () => void;
  ready: Promise<void>;
}

function send(w: ProjectWatcher, run: RunRecord): void {
  if (w.app && run.app !== w.app) return;
  const key = visibleState(run);
  if (w.lastSent.get(run.id) === key) return;
  // Delete first so the entry moves to the end: the map forgets the least recently sent.
  w.lastSent.delete(run.id);
  w.lastSent.set(run.id, key);
  if (w.lastSent.size > REMEMBERED) w.lastSent.delete(w.lastSent.keys().next().value as string);
  w.out.run(run);
}

/** The project watches of one process (see above); `watch` is RunService/WatchRuns. */
export function createProjectWatchers(
  deps: { store: SchedulerStore; bus: EventBus; metrics?: Pick<SchedulerMetrics, "watchRead"> },
  options: { coalesceMs?: number } = {},
) {
  const coalesceMs = options.coalesceMs ?? WATCH_RUNS_COALESCE_MS;
  const entries = new Map<string, ProjectEntry>();

  function entryOf(project: string): ProjectEntry {
    const existing = entries.get(project);
    if (existing) return existing;
    const e: ProjectEntry = {
      project,
      watchers: new Set(),
      joining: 0,
      pending: new Set(),
      wake: undefined,
      stop: new AbortController(),
      unsubscribe: () => undefined,
      ready: Promise.resolve(),
    };
    // Subscribe before anything is read or announced, so that no change falls in between.
    e.unsubscribe = deps.bus.watchProject(project, (runId) => {
      e.pending.add(runId);
      e.wake?.();
    });
    e.ready = deps.bus.watchesReady();
    entries.set(project, e);
    // A read's failure is its watchers' (each read catches it); anything else ends them too.
    readLoop(e).catch((err: unknown) => {
      for (const w of [...e.watchers]) w.fail(err);
    });
    return e;
  }

  function detach(e: ProjectEntry, w: ProjectWatcher | undefined): void {
    if (w) e.watchers.delete(w);
    if (e.watchers.size > 0 || e.joining > 0 || entries.get(e.project) !== e) return;
    e.stop.abort();
    e.unsubscribe();
    entries.delete(e.project);
    e.wake?.();
  }

  async function readLoop(e: ProjectEntry): Promise<void> {
    await e.ready;
    let lastRead = 0;
    while (!e.stop.signal.aborted) {
      const catchUps = [...e.watchers].filter((w) => !w.caughtUp);
      if (e.pending.size === 0 && catchUps.length === 0) {
        await new Promise<void>((resolve) => {
          e.wake = () => {
            e.wake = undefined;
            resolve();
          };
          if (e.stop.signal.aborted) e.wake();
        });
        continue;
      }
      // At most one read of notices per window; a notice after a quiet spell, or a new watch's catch-up, is read at once.
      const wait = lastRead + coalesceMs - Date.now();
      if (catchUps.length === 0 && wait > 0) {
        await sleep(wait, e.stop.signal);
        continue;
      }
      lastRead = Date.now();
      const noticed = new Set(e.pending);
      e.pending.clear();
      for (const w of catchUps) w.caughtUp = true;
      try {
        for (const w of catchUps) {
          if (!w.createdAfter) continue;
          const fresh = await deps.store.listRuns({ project: e.project, app: w.app || undefined, createdAfter: w.createdAfter, limit: CREATED_AFTER_LIMIT });
          deps.metrics?.watchRead("project");
          for (const run of fresh.reverse()) send(w, run);
        }
        const ids = [...new Set([...noticed, ...catchUps.flatMap((w) => w.named)])];
        for (let i = 0; i < ids.length && !e.stop.signal.aborted; i += READ_BATCH) {
          const runs = await deps.store.findRuns(e.project, ids.slice(i, i + READ_BATCH));
          deps.metrics?.watchRead("project");
          for (const run of runs) {
            if (noticed.has(run.id)) for (const w of e.watchers) send(w, run);
            else for (const w of catchUps) if (w.named.includes(run.id)) send(w, run);
          }
        }
      } catch (err) {
        // The notices of this read are lost to every watch: each must reconnect and list again.
        for (const w of [...e.watchers]) w.fail(err);
      }
    }
  }

  return {
    /**
     * Streams the project's changed runs to `out` until `signal` aborts.
     * Rejects when a read fails (Postgres down): the notices meanwhile are
     * lost, so the client must reconnect and list again rather than go on
     * with a gap.
     */
    async watch(project: string, query: WatchRunsQuery, signal: AbortSignal, out: WatchRunsOutput): Promise<void> {
      const q = checkWatchRunsQuery(query);
      if (signal.aborted) return;
      const e = entryOf(project);
      e.joining += 1;
      try {
        await e.ready;
      } finally {
        e.joining -= 1;
      }
      if (signal.aborted) {
        // Never attached: the entry may have no one left.
        detach(e, undefined);
        return;
      }
      await new Promise<void>((resolve, reject) => {
        const watcher: ProjectWatcher = {
          app: q.app,
          out,
          lastSent: new Map(),
          named: [...q.runIds],
          createdAfter: q.createdAfter,
          caughtUp: q.runIds.length === 0 && !q.createdAfter,
          fail: (err) => {
            signal.removeEventListener("abort", onAbort);
            detach(e, watcher);
            reject(err instanceof Error ? err : new Error(String(err)));
          },
        };
        const onAbort = () => {
          detach(e, watcher);
          resolve();
        };
        signal.addEventListener("abort", onAbort, { once: true });
        out.live();
        e.watchers.add(watcher);
        if (!watcher.caughtUp) e.wake?.();
      });
    },

    /** Projects watched now, and their watches. */
    stats(): { projects: number; watchers: number } {
      let watchers = 0;
      for (const e of entries.values()) watchers += e.watchers.size;
      return { projects: entries.size, watchers };
    },
  };
}

/** One project watch on watchers of its own (tests; the registry shares one set per process). */
export function watchProjectRuns(
  deps: { store: SchedulerStore; bus: EventBus; metrics?: Pick<SchedulerMetrics, "watchRead"> },
  project: string,
  query: WatchRunsQuery,
  signal: AbortSignal,
  out: WatchRunsOutput,
  options: { coalesceMs?: number } = {},
): Promise<void> {
  return createProjectWatchers(deps, options).watch(project, query, signal, out);
}
