/** Options of {@link createBatcher}. */
export interface BatcherOptions<I, O> {
  /** Most items in one batch; a full batch runs at once. */
  maxSize: number;
  /** Runs one batch (one statement, one commit); resolves with one result per item, in order. */
  run(items: I[]): Promise<O[]>;
  /**
   * True when the batch's error may be one item's fault (bad data, a
   * constraint): the items then run one by one, so that only the bad one
   * fails. Any other error fails every caller of the batch.
   */
  isItemError(err: unknown): boolean;
}

/** Concurrent callers' items, run together. */
export interface Batcher<I, O> {
  /**
   * Queues an item to run within `windowMs` (sooner when the batch fills or an
   * item with a shorter window joins); resolves when its batch has run.
   */
  add(item: I, windowMs: number): Promise<O>;
  /** Runs what is queued now and waits for every batch in flight. */
  flush(): Promise<void>;
}

interface Queued<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit: items added within a short window run as one batch, and each
 * caller is answered only when its batch has run (its rows committed). A
 * failed batch fails all its callers, except that an error {@link
 * BatcherOptions.isItemError} calls an item's fault runs the items alone.
 */
export function createBatcher<I, O>(options: BatcherOptions<I, O>): Batcher<I, O> {
  let queue: Queued<I, O>[] = [];
  let timer: NodeJS.Timeout | undefined;
  let dueAt = Infinity;
  const running = new Set<Promise<void>>();

  async function settle(batch: Queued<I, O>[]): Promise<void> {
    try {
      const out = await options.run(batch.map((q) => q.item));
      batch.forEach((q, i) => q.resolve(out[i]!));
    } catch (err) {
      if (batch.length === 1 || !options.isItemError(err)) {
        for (const q of batch) q.reject(err);
        return;
      }
      await Promise.all(batch.map((q) => settle([q])));
    }
  }

  function runNow(): void {
    clearTimeout(timer);
    timer = undefined;
    dueAt = Infinity;
    if (queue.length === 0) return;
    const batch = queue;
    queue = [];
    const p = settle(batch);
    running.add(p);
    void p.finally(() => running.delete(p));
  }

  return {
    add(item, windowMs) {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (queue.length >= options.maxSize) return runNow();
        const at = Date.now() + windowMs;
        if (at < dueAt) {
          clearTimeout(timer);
          dueAt = at;
          timer = setTimeout(runNow, windowMs);
        }
      });
    },
    async flush() {
      runNow();
      await Promise.all([...running]);
    },
  };
}
