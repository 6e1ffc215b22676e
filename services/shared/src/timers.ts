import { setTimeout as delay } from "node:timers/promises";

/**
 * Waits `ms`, or less if `signal` aborts first (then it resolves, without
 * an error): the pause of a loop that a stop cuts short. Node's
 * timers/promises removes its abort listener either way.
 */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, signal ? { signal } : {});
  } catch (err) {
    if (!signal?.aborted) throw err;
  }
}

/**
 * `promise`, or an error saying `message` once `ms` passed without its answer.
 * The work itself goes on (it takes no signal); only the wait is bounded.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  const timer = new AbortController();
  const timeout = delay(ms, undefined, { signal: timer.signal }).then(() => {
    throw new Error(message);
  });
  // Aborted once the race is decided: the rejection is the race's, already handled.
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    timer.abort();
  }
}
