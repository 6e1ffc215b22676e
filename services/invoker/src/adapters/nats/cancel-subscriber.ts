import type { Logger } from "@longhaul/shared/logger";
import type { NatsConnection, NatsNames } from "@longhaul/shared/nats";

/**
 * Subscribes (core NATS, every invoker) to `<p>.control.cancel`, payload
 * `{"run_id"}`, and aborts the call when this invoker holds the run. The
 * scheduler has already recorded the cancel; nothing is reported back.
 */
export function subscribeCancels(
  nc: NatsConnection,
  names: NatsNames,
  log: Logger,
  cancel: (runId: string) => boolean,
): { close(): Promise<void> } {
  const sub = nc.subscribe(names.cancel, {
    callback: (err, msg) => {
      if (err) {
        log.error({ err }, "cancel subscription failed");
        return;
      }
      let runId: unknown;
      try {
        runId = (JSON.parse(msg.string()) as { run_id?: unknown }).run_id;
      } catch {
        runId = undefined;
      }
      if (typeof runId !== "string" || runId === "") {
        log.warn({ subject: msg.subject }, "cancel payload is not {run_id}; ignored");
        return;
      }
      const held = cancel(runId);
      log.debug({ run_id: runId, held }, "cancel received");
    },
  });
  return {
    async close() {
      sub.unsubscribe();
      await sub.closed;
    },
  };
}
