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
 * while a look still finds work. Errors never stop it: the next look may
 * find the database back.
 */
export function startPoller(options: PollerOptions): { stop(): Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const tick = async (): Promise<void> => {
    let again = false;
    try {
      again = (await options.poll()) > 0;
      options.onResult?.(true);
    } catch (err) {
      options.onResult?.(false, err);
    }
    if (!stopped) timer = setTimeout(() => (running = tick()), again ? 0 : options.intervalMs);
  };
  running = tick();

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
