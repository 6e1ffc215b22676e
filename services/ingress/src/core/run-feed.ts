import { LonghaulError, runsPb } from "@longhaul/shared";
import type { Caller, RunsPort } from "./ports.js";

/**
 * The project's live feed of runs (`GET /v1/events`, issue 8: "new runs and
 * state changes appear live"). The ingress has no NATS connection and the
 * scheduler's change notice does not name the project, so the feed is built
 * from what RunService offers:
 *
 * - new runs: ListRuns `created_after` every `pollMs`. Runs are committed out
 *   of `created_at` order (Postgres stamps the transaction's start), so each
 *   poll looks `overlapMs` behind the newest run seen and drops runs already
 *   sent;
 * - state changes: one WatchRun stream per unfinished run the feed knows (the
 *   ones the client names, then every new one), so a change arrives as soon
 *   as the scheduler sees it. At most `maxWatched` are watched; beyond that
 *   the oldest is let go, and the client's periodic refresh covers it.
 *
 * A run is emitted only when its visible state (status, attempt, webhook
 * state, status code) differs from what this feed last sent of it.
 */
export interface RunFeedOptions {
  runs: RunsPort;
  caller: Caller;
  /** Only runs of this app; "" for all. */
  app: string;
  /** Runs the client shows unfinished: watched from the start. */
  watch: readonly string[];
  /** New runs are those created after this (less the overlap). */
  since: Date;
  pollMs: number;
  maxWatched: number;
  /** Deadline of each WatchRun stream, in seconds. */
  watchSeconds: number;
  /** Ends the feed: the client went away or the stream reached its age. */
  signal: AbortSignal;
  /** Called for a transient failure (the scheduler is down); the feed goes on. */
  onTransientError?: (err: LonghaulError) => void;
  /** @default 5000 */
  overlapMs?: number;
  /** New runs fetched per poll at most. @default 100 */
  pageSize?: number;
}

/** A running feed. */
export interface RunFeed {
  /** Resolves when the signal aborts; rejects on a fatal error (the key stopped working). */
  done: Promise<void>;
}

/** Errors after which polling again cannot help: the feed ends with them. */
const FATAL = new Set(["unauthenticated", "invalid_argument", "not_found"]);

function stateKey(run: runsPb.Run): string {
  return `${run.status}|${run.attempt}|${run.webhookState}|${run.statusCode}|${run.attempts.length}`;
}

function isFinished(status: runsPb.RunStatus): boolean {
  return status >= runsPb.RunStatus.RUN_STATUS_SUCCEEDED && status <= runsPb.RunStatus.RUN_STATUS_EXPIRED;
}

/**
 * Starts a feed. The first poll runs before this resolves, so a bad filter or
 * key is thrown here (the HTTP answer can still be an ordinary error) and the
 * runs it found are emitted before `done` is returned.
 */
export async function startRunFeed(opts: RunFeedOptions, emit: (run: runsPb.Run) => void): Promise<RunFeed> {
  const overlapMs = opts.overlapMs ?? 5000;
  const pageSize = opts.pageSize ?? 100;
  /** What was last sent of each watched run (dropped when its watch ends). */
  const lastSent = new Map<string, string>();
  /** Watched runs, oldest first (Map keeps insertion order). */
  const watched = new Map<string, AbortController>();
  const watchTasks = new Set<Promise<void>>();
  /** Runs sent by the poll, with their creation time, while inside the overlap. */
  const seen = new Map<string, number>();
  let newest = opts.since.getTime();

  const send = (run: runsPb.Run) => {
    const key = stateKey(run);
    if (lastSent.get(run.id) === key) return;
    lastSent.set(run.id, key);
    emit(run);
  };

  const watch = (runId: string) => {
    if (watched.has(runId) || opts.signal.aborted) return;
    if (watched.size >= opts.maxWatched) {
      const [oldest, ac] = watched.entries().next().value as [string, AbortController];
      watched.delete(oldest);
      lastSent.delete(oldest);
      ac.abort();
    }
    const ac = new AbortController();
    const stop = () => ac.abort();
    opts.signal.addEventListener("abort", stop, { once: true });
    watched.set(runId, ac);
    const task = (async () => {
      try {
        for await (const run of opts.runs.watchRun(opts.caller, runId, opts.watchSeconds, ac.signal)) send(run);
      } catch (err) {
        // A run of another project, or one deleted: nothing to watch. The
        // scheduler down: the client's refresh shows the state meanwhile.
        if (!ac.signal.aborted) opts.onTransientError?.(LonghaulError.from(err));
      } finally {
        opts.signal.removeEventListener("abort", stop);
        if (watched.get(runId) === ac) {
          watched.delete(runId);
          lastSent.delete(runId);
        }
      }
    })();
    watchTasks.add(task);
    void task.finally(() => watchTasks.delete(task));
  };

  const poll = async () => {
    const res = await opts.runs.listRuns(
      opts.caller,
      {
        app: opts.app,
        status: runsPb.RunStatus.RUN_STATUS_UNSPECIFIED,
        createdAfter: new Date(newest - overlapMs),
        limit: pageSize,
        cursor: "",
      },
      { signal: opts.signal },
    );
    // The page is newest first; send oldest first, as they happened.
    for (const run of [...res.runs].reverse()) {
      const created = run.createdAt?.getTime() ?? Date.now();
      if (seen.has(run.id)) continue;
      seen.set(run.id, created);
      newest = Math.max(newest, created);
      if (isFinished(run.status)) {
        // Sent once; `seen` keeps it from being sent again while in the overlap.
        emit(run);
      } else {
        send(run);
        watch(run.id);
      }
    }
    for (const [id, created] of seen) if (created < newest - overlapMs) seen.delete(id);
  };

  await poll();
  for (const id of opts.watch) watch(id);

  const loop = async () => {
    while (!opts.signal.aborted) {
      await sleep(opts.pollMs, opts.signal);
      if (opts.signal.aborted) break;
      try {
        await poll();
      } catch (err) {
        if (opts.signal.aborted) break;
        const e = LonghaulError.from(err);
        if (FATAL.has(e.code)) throw e;
        opts.onTransientError?.(e);
      }
    }
  };
  const done = loop().finally(async () => {
    for (const ac of watched.values()) ac.abort();
    await Promise.allSettled([...watchTasks]);
  });
  return { done };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
