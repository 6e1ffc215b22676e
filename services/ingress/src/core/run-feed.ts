import { LonghaulError } from "@longhaul/shared/errors";
import { runsPb } from "@longhaul/shared/proto";
import type { Caller, RunsPort } from "./ports.js";

/**
 * The project's live feed of runs (`GET /v1/events`: "new runs and
 * state changes appear live"): one RunService/WatchRuns stream. The scheduler
 * sends every change of the project's runs (created, state, webhook state),
 * coalesced and without repeats, so the feed only has to
 *
 * - wait until the scheduler listens before the HTTP answer starts, so that a
 *   bad filter or key, or a scheduler that is down, is an ordinary error;
 * - ask it to catch up first on what the client may have missed before it
 *   was listening: the runs the client names (their current state) and the
 *   runs created since `since` (less `overlapMs`: Postgres stamps a run with
 *   its transaction's start, so runs commit out of `created_at` order).
 *
 * Change notices are at most once (core NATS): a client reloads what it
 * shows on each (re)connect and now and then.
 */
export interface RunFeedOptions {
  runs: RunsPort;
  caller: Caller;
  /** Only runs of this app; "" for all. */
  app: string;
  /** Runs the client shows: sent first, as they are now. */
  runIds: readonly string[];
  /** Runs created after this (less the overlap) are sent first too. */
  since: Date;
  /** Deadline of the WatchRuns stream, in seconds: the feed ends then. */
  maxSeconds: number;
  /** Ends the feed (the client went away). */
  signal: AbortSignal;
  /** @default 5000 */
  overlapMs?: number;
}

/**
 * Opens a feed. Resolves once the scheduler listens (errors before that are
 * thrown); the iterable then yields the runs as they change, and ends at the
 * stream's deadline or when the signal aborts. A scheduler copy going away
 * is bridged by the port (another copy catches up); any other failure after
 * that (the key revoked, no scheduler left) is thrown from the iteration:
 * the client must reconnect and reload, since changes meanwhile are lost.
 */
export async function openRunFeed(opts: RunFeedOptions): Promise<AsyncIterable<runsPb.Run>> {
  const watch = opts.runs.watchRuns(
    opts.caller,
    {
      app: opts.app,
      runIds: [...opts.runIds],
      createdAfter: new Date(opts.since.getTime() - (opts.overlapMs ?? 5000)),
    },
    opts.maxSeconds,
    opts.signal,
  );
  const iterator = watch[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) {
    if (opts.signal.aborted) return emptyFeed();
    throw new LonghaulError("unavailable", "the scheduler ended the project feed before it was live", { retryAfterSeconds: 2 });
  }
  // The scheduler always says `live` first; a run first would still be a run to send.
  const head = first.value.kind === "run" ? [first.value.run] : [];
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* head;
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
          if (next.value.kind === "run") yield next.value.run;
        }
      } finally {
        await iterator.return?.();
      }
    },
  };
}

async function* emptyFeed(): AsyncGenerator<runsPb.Run> {}
