/** Options of {@link startPoller}. */
export interface PollerOptions {
  /** One look for due work; resolves with the number of attempts it started. */
  poll: () => Promise<number>;
  intervalMs: number;
  /** Told after each look whether it worked, with its error when not. */
  onResult?: (ok: boolean, err?: unknown) => void;
}

/**
 * Calls `poll` every `intervalMs`, never two at once; looks again at once
 * while a look still finds work, or when `wake` is called. Errors never stop
 * it: the next look may find the database back.
 */
export function startPoller(options: PollerOptions): { wake(): void; stop(): Promise<void> } {
  let stopped = false;
  let busy = false;
  let wakeRequested = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const schedule = (ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => (running = tick()), ms);
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
    if (!stopped) schedule(again || wakeRequested ? 0 : options.intervalMs);
  };
  running = tick();

  return {
    wake() {
      if (stopped) return;
      // A look in progress looks again when it ends; else look now.
      if (busy) wakeRequested = true;
      else schedule(0);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
