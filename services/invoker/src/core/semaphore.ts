/**
 * A counting semaphore with a FIFO queue: `acquire()` resolves once one of
 * `limit` slots is free, with the function that gives it back. Each release
 * wakes exactly one waiter, so thousands of waiters cost O(1) per release
 * (Capacity.whenFree wakes them all, which suits one pull loop, not this).
 */
export interface Semaphore {
  readonly limit: number;
  inUse(): number;
  waiting(): number;
  /** Resolves with a release function (idempotent) once a slot is ours. */
  acquire(): Promise<() => void>;
}

export function createSemaphore(limit: number): Semaphore {
  let used = 0;
  // A queue as an array with a moving head: shift() on a long array is O(n).
  let queue: Array<() => void> = [];
  let head = 0;

  const grant = (): (() => void) => {
    used += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      used -= 1;
      if (head < queue.length) {
        const next = queue[head]!;
        queue[head] = undefined as never; // let the resolved waiter be collected
        head += 1;
        if (head > 1024 && head * 2 > queue.length) {
          queue = queue.slice(head);
          head = 0;
        }
        next();
      }
    };
  };

  return {
    limit,
    inUse: () => used,
    waiting: () => queue.length - head,
    acquire() {
      if (used < limit && head === queue.length) return Promise.resolve(grant());
      return new Promise((resolve) => queue.push(() => resolve(grant())));
    },
  };
}
