import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import {
  contextFromCarrier,
  traceHeaders,
  type Logger,
  type NatsConnection,
  type NatsNames,
} from "@longhaul/shared";
import type { EventBus } from "../../core/ports.js";

const encoder = new TextEncoder();

/**
 * Events over NATS: dispatch and run.finished on JetStream (durable, deduped
 * by message id), cancel and run.changed on core NATS (best effort; Postgres
 * and the heartbeats are the backstop).
 */
export function createEventBus(nc: NatsConnection, names: NatsNames, log: Logger): EventBus {
  const js: JetStreamClient = jetstream(nc);
  let connected = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") connected = false;
      else if (s.type === "reconnect") connected = true;
    }
  })().catch((err: unknown) => log.error({ err }, "nats status loop failed"));

  return {
    async publishDispatch(refs) {
      await Promise.all(
        refs.map((r) =>
          js.publish(names.dispatch(r.project, r.app), encoder.encode(JSON.stringify({ run_id: r.runId, attempt: r.attempt })), {
            msgID: `${r.runId}:${r.attempt}`,
            headers: traceHeaders(contextFromCarrier(r.traceparent)),
            timeout: 5_000,
          }),
        ),
      );
    },
    async publishFinished(run) {
      await js.publish(
        names.finished(run.project),
        encoder.encode(JSON.stringify({ run_id: run.id, project: run.project, app: run.app, status: run.status })),
        { msgID: `${run.id}:finished`, headers: traceHeaders(), timeout: 5_000 },
      );
    },
    publishCancel(runId) {
      nc.publish(names.cancel, encoder.encode(JSON.stringify({ run_id: runId })));
    },
    publishChanged(runId, status) {
      nc.publish(names.runChanged(runId), encoder.encode(JSON.stringify({ run_id: runId, status })));
    },
    watchChanges(runId, onChange) {
      const sub = nc.subscribe(names.runChanged(runId), { callback: () => onChange() });
      return () => sub.unsubscribe();
    },
    isConnected: () => connected && !nc.isClosed(),
  };
}
