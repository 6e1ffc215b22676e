import type { EventBus } from "./ports.js";

/**
 * The watchers of single runs in this process (RunService/WatchRun, which
 * the gateway's `GET /v1/runs/{id}/events` streams, and GetRun with
 * `wait_seconds`, which every `?wait=` long poll is), sharing their work:
 *
 * - one NATS subscription per watched run, however many watch it, made and
 *   confirmed by a broker round trip before its first read (a notice sent
 *   meanwhile by another copy would otherwise be missed);
 * - one read of the run per change notice, shared by every watcher: notices
 *   that come while a read is in flight cost one more read after it (the
 *   read in flight may predate their commit), not one each;
 * - one safety read per watched run (not per watcher) when nothing was read
 *   for `safetyReadMs`, since core NATS notices are at most once.
 *
 * A watcher that joins a run already watched starts from the last read: it
 * was made after the subscription was confirmed, and every change since is
 * either in it or announced by a notice still to come.
 */

/** A watched run is read again after this long without a read (a lost notice). */
export const WATCH_SAFETY_READ_MS = 2_000;

/** One read of a run, numbered in the order reads finished. */
export interface Snapshot<V> {
  view: V;
  seq: number;
}

export interface RunWatchersDeps<V> {
  bus: Pick<EventBus, "watchChanges" | "watchesReady">;
  /** Reads the run as the project sees it; throws not_found and the like. */
  read(project: string, runId: string): Promise<V>;
  /** A run that will not change in a way a watcher waits for: no safety reads. */
  isFinal(view: V): boolean;
  /** Called once per read (to count them). */
  onRead?(): void;
  /** Called with the error of a read no watcher waited for. */
  onLostError?(err: unknown): void;
}

/** One watcher of one run. */
export interface RunFollower<V> {
  /** The run as read after this watch's subscription was confirmed (perhaps by an earlier watcher). */
  first(): Promise<Snapshot<V>>;
  /**
   * The first read newer than `after`; after `ms` or on abort, the newest
   * read so far (perhaps `after` itself). Rejects when that read fails.
   */
  next(after: Snapshot<V>, ms: number, signal: AbortSignal): Promise<Snapshot<V>>;
  /** Ends this watcher; the run's subscription goes with its last one. */
  close(): void;
}

interface Waiter<V> {
  resolve(s: Snapshot<V>): void;
  reject(err: unknown): void;
}

interface Entry<V> {
  project: string;
  runId: string;
  followers: number;
  closed: boolean;
  unsubscribe: () => void;
  ready: Promise<void>;
  latest: Snapshot<V> | undefined;
  seq: number;
  reading: Promise<void> | undefined;
  /** A notice came during the read in flight: read once more after it. */
  again: boolean;
  waiters: Set<Waiter<V>>;
  safety: NodeJS.Timeout | undefined;
}

export function createRunWatchers<V>(deps: RunWatchersDeps<V>, options: { safetyReadMs?: number } = {}) {
  const safetyReadMs = options.safetyReadMs ?? WATCH_SAFETY_READ_MS;
  const entries = new Map<string, Entry<V>>();

  function requestRead(e: Entry<V>): void {
    if (e.reading) {
      e.again = true;
      return;
    }
    e.reading = readLoop(e).finally(() => {
      e.reading = undefined;
      armSafety(e);
    });
  }

  async function readLoop(e: Entry<V>): Promise<void> {
    // Reads start only once the subscription is confirmed.
    await e.ready;
    do {
      e.again = false;
      clearTimeout(e.safety);
      let snapshot: Snapshot<V> | undefined;
      let failure: unknown;
      try {
        snapshot = { view: await deps.read(e.project, e.runId), seq: ++e.seq };
      } catch (err) {
        failure = err;
      }
      deps.onRead?.();
      const waiters = [...e.waiters];
      e.waiters.clear();
      if (snapshot) {
        e.latest = snapshot;
        for (const w of waiters) w.resolve(snapshot);
      } else {
        // The next watcher to join reads anew rather than start from a stale state.
        e.latest = undefined;
        if (waiters.length === 0) deps.onLostError?.(failure);
        for (const w of waiters) w.reject(failure);
      }
    } while (e.again && !e.closed);
  }

  function armSafety(e: Entry<V>): void {
    clearTimeout(e.safety);
    e.safety = undefined;
    if (e.closed || (e.latest && deps.isFinal(e.latest.view))) return;
    e.safety = setTimeout(() => requestRead(e), safetyReadMs);
    e.safety.unref();
  }

  function entryOf(project: string, runId: string): Entry<V> {
    const key = `${project}/${runId}`;
    let e = entries.get(key);
    if (!e) {
      const entry: Entry<V> = {
        project,
        runId,
        followers: 0,
        closed: false,
        unsubscribe: () => undefined,
        ready: Promise.resolve(),
        latest: undefined,
        seq: 0,
        reading: undefined,
        again: false,
        waiters: new Set(),
        safety: undefined,
      };
      entry.unsubscribe = deps.bus.watchChanges(runId, () => {
        if (!entry.closed) requestRead(entry);
      });
      entry.ready = deps.bus.watchesReady();
      entries.set(key, entry);
      e = entry;
    }
    return e;
  }

  function release(project: string, e: Entry<V>): void {
    e.followers -= 1;
    if (e.followers > 0) return;
    e.closed = true;
    clearTimeout(e.safety);
    e.unsubscribe();
    entries.delete(`${project}/${e.runId}`);
  }

  function waitNewer(e: Entry<V>): Promise<Snapshot<V>> {
    return new Promise<Snapshot<V>>((resolve, reject) => e.waiters.add({ resolve, reject }));
  }

  return {
    /** Starts watching `runId` of `project` (a lowercase uuid). */
    follow(project: string, runId: string): RunFollower<V> {
      const e = entryOf(project, runId);
      e.followers += 1;
      let closed = false;
      return {
        async first() {
          await e.ready;
          if (e.latest) return e.latest;
          const newer = waitNewer(e);
          requestRead(e);
          return newer;
        },
        next(after, ms, signal) {
          if (e.latest && e.latest.seq > after.seq) return Promise.resolve(e.latest);
          if (signal.aborted) return Promise.resolve(e.latest ?? after);
          return new Promise<Snapshot<V>>((resolve, reject) => {
            const waiter: Waiter<V> = {
              resolve: (s) => {
                done();
                resolve(s);
              },
              reject: (err) => {
                done();
                reject(err);
              },
            };
            const timeUp = () => {
              done();
              resolve(e.latest ?? after);
            };
            const timer = Number.isFinite(ms) ? setTimeout(timeUp, Math.max(ms, 0)) : undefined;
            const done = () => {
              clearTimeout(timer);
              signal.removeEventListener("abort", timeUp);
              e.waiters.delete(waiter);
            };
            signal.addEventListener("abort", timeUp, { once: true });
            e.waiters.add(waiter);
          });
        },
        close() {
          if (closed) return;
          closed = true;
          release(project, e);
        },
      };
    },

    /** Runs watched now, and their watchers. */
    stats(): { runs: number; watchers: number } {
      let watchers = 0;
      for (const e of entries.values()) watchers += e.followers;
      return { runs: entries.size, watchers };
    },
  };
}

export type RunWatchers<V> = ReturnType<typeof createRunWatchers<V>>;
