/** Options of {@link startPoller}. */
export interface PollerOptions {
  /** One look for due work; resolves with the number of attempts it started. */
  poll: () => Promise<number>;
  intervalMs: number;
  /**
   * While looks find nothing, the pause doubles up to this (an idle notifier
   * costs Postgres a statement every few seconds, not every second); a look
   * that finds work, `wake` or `wakeIn` bring it back. @default intervalMs
   */
  idleMaxMs?: number;
  /** Told after each look whether it worked, with its error when not. */
  onResult?: (ok: boolean, err?: unknown) => void;
}

/**
 * Calls `poll` every `intervalMs` (up to `idleMaxMs` while it finds
 * nothing), never two at once; looks again at once while a look still finds
 * work, or when `wake` is called, and by `wakeIn(ms)` when work falls due
 * then. Errors never stop it: the next look may find the database back.
 */
export function startPoller(options: PollerOptions): { wake(): void; wakeIn(ms: number): void; stop(): Promise<void> } {
  let stopped = false;
  let busy = false;
  let wakeRequested = false;
  let timer: NodeJS.Timeout | undefined;
  let dueAt = 0;
  let pause = options.intervalMs;
  const idleMax = Math.max(options.intervalMs, options.idleMaxMs ?? options.intervalMs);
  let running: Promise<void> = Promise.resolve();

  const schedule = (ms: number) => {
    clearTimeout(timer);
    dueAt = Date.now() + ms;
    timer = setTimeout(() => {
      running = tick();
    }, ms);
  };

  const tick = async (): Promise<void> => {
    busy = true;
    wakeRequested = false;
    let again = false;
    try {
      again = (await options.poll()) > 0;
      options.onResult?.(true);
    } catch (err) {
      options.onResult?.(false, err);
    }
    busy = false;
    pause = again ? options.intervalMs : Math.min(pause * 2, idleMax);
    if (!stopped) schedule(again || wakeRequested ? 0 : pause);
  };
  running = tick();

  return {
    wake() {
      if (stopped) return;
      // A look in progress looks again when it ends; else look now.
      if (busy) wakeRequested = true;
      else schedule(0);
    },
    wakeIn(ms) {
      if (stopped) return;
      pause = options.intervalMs;
      // A look in progress schedules the next one itself, at the full rate now.
      if (!busy && Date.now() + ms < dueAt) schedule(ms);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
