import type { Logger } from "@longhaul/shared/logger";
import { decodeCancel, type NatsConnection, type NatsNames } from "@longhaul/shared/nats";

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
      // A CancelNotice (events.proto), or an older scheduler's JSON.
      const runId = decodeCancel(msg.data);
      if (!runId) {
        log.warn({ subject: msg.subject }, "cancel payload is not a CancelNotice; ignored");
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
