import type { Logger } from "pino";

/** Something to stop at shutdown, in the order registered. */
export type Closer = { name: string; close: () => Promise<void> };

/**
 * Runs the closers once, in order, on SIGTERM or SIGINT, then exits. A second
 * signal exits at once; a closer that throws is logged and the rest still run.
 */
export function onShutdown(log: Logger, closers: Closer[], graceMs = 30_000): () => Promise<void> {
  let closing: Promise<void> | undefined;
  const shutdown = async (): Promise<void> => {
    if (closing) return closing;
    closing = (async () => {
      const timer = setTimeout(() => {
        log.error({ graceMs }, "shutdown took too long; exiting");
        process.exit(1);
      }, graceMs + 5_000);
      timer.unref();
      for (const c of closers) {
        try {
          await c.close();
          log.debug({ closer: c.name }, "closed");
        } catch (err) {
          log.error({ err, closer: c.name }, "close failed");
        }
      }
      log.info("stopped");
    })();
    return closing;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      log.warn({ signal }, "second signal; exiting now");
      process.exit(1);
    }
    log.info({ signal }, "shutting down");
    shutdown().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return shutdown;
}
