/**
 * Counts the calls held at once against INVOKER_MAX_IN_FLIGHT. Async runs
 * and sync pass-through calls share it. Acquiring never fails: the dispatch
 * consumer asks for no more messages than there are free slots, so going
 * over happens only briefly, when sync calls arrive meanwhile.
 */
export interface Capacity {
  readonly limit: number;
  inUse(): number;
  free(): number;
  /** Takes a slot; the returned function gives it back (once). */
  acquire(): () => void;
  /** Resolves when a slot is free, or when `signal` aborts. */
  whenFree(signal?: AbortSignal): Promise<void>;
}

export function createCapacity(limit: number, onChange?: (inUse: number) => void): Capacity {
  let used = 0;
  let waiters: Array<() => void> = [];

  const wake = () => {
    if (used >= limit || waiters.length === 0) return;
    const ready = waiters;
    waiters = [];
    for (const w of ready) w();
  };

  return {
    limit,
    inUse: () => used,
    free: () => Math.max(0, limit - used),
    acquire() {
      used += 1;
      onChange?.(used);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        used -= 1;
        onChange?.(used);
        wake();
      };
    },
    whenFree(signal) {
      if (used < limit || signal?.aborted) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          signal?.removeEventListener("abort", done);
          waiters = waiters.filter((w) => w !== done);
          resolve();
        };
        waiters.push(done);
        signal?.addEventListener("abort", done, { once: true });
      });
    },
  };
}
