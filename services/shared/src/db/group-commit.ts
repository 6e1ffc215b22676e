/**
 * Group commit: callers that arrive while a batch is being written wait and
 * go together in the next one, one statement and one commit for all of them.
 *
 * Without a window (`windowMs` 0, the default) there is no timer: a caller
 * arriving while nothing is in flight is written at once (no added latency on
 * a quiet system); under load each batch takes what queued while the
 * previous one was written, up to `maxBatch`. A window holds a batch open a
 * little longer for more callers (see GroupCommitOptions); callers queued
 * behind a write in flight never wait a window after it. A caller is
 * answered only after its batch's statement returned, so after its row is
 * durable.
 *
 * Failures stay with their callers. When a batch of several fails on a row's
 * own data (a constraint or a bad value: SQLSTATE classes 22 and 23), each
 * of its callers is written again alone, so one bad row fails only its own
 * caller. Any other failure (the connection, the server) fails every caller
 * of the batch and acknowledges none.
 */
export interface GroupCommitOptions {
  /** Most callers in one statement. */
  maxBatch: number;
  /** Batches written at once (each holds a pool connection). */
  concurrency?: number;
  /**
   * How long a batch waits for more callers before it is written (flushed
   * early when full). 0, the default: not at all. Only for writes nobody
   * waits on in a hurry (a webhook's state), where fewer commits matter more
   * than a few milliseconds.
   */
  windowMs?: number;
  /**
   * Opens the window only for a caller that came less than `busyWithinMs`
   * after the one before it: on a quiet system a lone caller is written at
   * once, and only callers that come close together wait for each other.
   */
  windowWhenBusy?: boolean;
  /**
   * With windowWhenBusy: the gap to the caller before under which a caller
   * opens the window. Default `windowMs` (only callers closer than a window
   * wait). Longer lets callers evenly spaced by more than a window share
   * one: at 150 callers/s, 6.7 ms apart, a 20-ms window opened for callers
   * within 100 ms of each other holds three.
   */
  busyWithinMs?: number;
  /**
   * With windowWhenBusy: opens the window only when the recent callers come
   * often enough that it will hold at least this many more, on average: when
   * their mean gap (exponentially weighted over about the last eight) is at
   * most `windowMs / windowCallers`. Below that rate a window mostly holds
   * its caller alone and only adds its length to the answer. 0, the default:
   * the gap to the caller before decides alone.
   */
  windowCallers?: number;
  /**
   * A window that holds fewer than `fillCallers` callers when its `windowMs`
   * ends stays open until it holds that many, up to `fillMaxMs` from its
   * start. Callers that come a few ms apart then share commits in batches of
   * about `fillCallers` where the fixed window held two or three, and so does
   * whatever follows each commit (one answer, one publish per batch); callers
   * that fill the window within `windowMs` see no change. 0, the default: the
   * window ends at `windowMs`.
   */
  fillCallers?: number;
  /** With fillCallers: the longest a window stays open, in all. Not above windowMs: no stretch. */
  fillMaxMs?: number;
}

/** Weight of the newest gap in the callers' mean gap (windowCallers). */
const GAP_WEIGHT = 1 / 8;
/**
 * A gap counts at most this many windows in the mean gap (windowCallers).
 * So one quiet spell raises the mean by at most half a window, and callers
 * that come in bunches, as they do off a stream, still read their true rate.
 * A cap of one window (busyWithinMs, by default) cut the long gaps between
 * bunches short: bunches of three at 375 a second read as 1.2-1.5 ms apart
 * and opened 4-ms windows meant for 500 a second and more. The price: after
 * a long sparse spell the mean sits near four windows, and a sudden burst
 * opens windows after ~20 callers, not ~9 (those that queue behind a write
 * in flight share its commit meanwhile).
 */
const GAP_CAP_WINDOWS = 4;

interface Waiter<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (err: unknown) => void;
}

/**
 * `write` writes a batch in one statement and returns one answer per item, in
 * order (undefined where the item's row was not there to change, as a single
 * caller would see it).
 */
export function groupCommit<I, O>(write: (items: I[]) => Promise<O[]>, options: GroupCommitOptions): (item: I) => Promise<O> {
  const queue: Waiter<I, O>[] = [];
  const concurrency = options.concurrency ?? 1;
  const windowMs = options.windowMs ?? 0;
  const busyWithinMs = options.busyWithinMs ?? windowMs;
  let inFlight = 0;
  let windowTimer: NodeJS.Timeout | undefined;
  /** The open window ran past windowMs, waiting to hold fillCallers (fillMaxMs). */
  let stretched = false;
  const fillCallers = options.fillCallers ?? 0;
  const stretchMs = Math.max(0, (options.fillMaxMs ?? 0) - windowMs);
  let lastArrival = -Infinity;
  const windowCallers = options.windowCallers ?? 0;
  const gapCap = windowMs * GAP_CAP_WINDOWS;
  // Starts as if callers came a busy gap apart (the first one's gap then
  // counts four windows): at most a dozen close callers open windows.
  let meanGap = busyWithinMs;

  async function flush(batch: Waiter<I, O>[]): Promise<void> {
    try {
      const out = await write(batch.map((w) => w.item));
      if (out.length !== batch.length) throw new Error(`group commit: ${out.length} answers for ${batch.length} items`);
      batch.forEach((w, i) => w.resolve(out[i]!));
    } catch (err) {
      if (batch.length > 1 && isRowError(err)) {
        // Alone again, all at once: the good rows commit, the bad one fails.
        await Promise.all(
          batch.map(async (w) => {
            try {
              const [one] = await write([w.item]);
              w.resolve(one!);
            } catch (own) {
              w.reject(own);
            }
          }),
        );
      } else {
        for (const w of batch) w.reject(err);
      }
    }
  }

  /** `busy`: the caller that called came within busyWithinMs of the one before (windowWhenBusy). */
  function next(busy = true): void {
    if (windowMs > 0 && busy && queue.length > 0 && queue.length < options.maxBatch && windowTimer === undefined) {
      // The first caller of a batch opens its window; the window's end writes it.
      windowTimer = setTimeout(() => {
        if (stretchMs > 0 && queue.length < fillCallers) {
          // Too few to be worth a commit of their own yet: wait for fillCallers, up to fillMaxMs in all.
          stretched = true;
          windowTimer = setTimeout(drain, stretchMs);
          return;
        }
        windowTimer = undefined;
        drain();
      }, windowMs);
      return;
    }
    // An open window is written early once full: at maxBatch, or at fillCallers once stretched.
    const full = stretched ? Math.min(fillCallers, options.maxBatch) : options.maxBatch;
    if (windowTimer !== undefined && queue.length < full) return;
    drain();
  }

  function drain(): void {
    clearTimeout(windowTimer);
    windowTimer = undefined;
    stretched = false;
    while (inFlight < concurrency && queue.length > 0) {
      const batch = queue.splice(0, options.maxBatch);
      inFlight++;
      void flush(batch).finally(() => {
        inFlight--;
        // Those that queued behind it waited its commit out: written now, not
        // after a window of their own (one still open is kept).
        if (queue.length > 0) next(false);
      });
    }
  }

  return (item: I) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      const now = Date.now();
      const gap = now - lastArrival;
      meanGap += (Math.min(gap, gapCap) - meanGap) * GAP_WEIGHT;
      lastArrival = now;
      next(!options.windowWhenBusy || (gap < busyWithinMs && meanGap * windowCallers <= windowMs));
    });
}

/** An error of one row's data, not of the database: SQLSTATE class 22 (data exception) or 23 (integrity). */
export function isRowError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" && /^2[23]/.test(code);
}
