import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import type { Logger } from "@longhaul/shared/logger";
import { withTimeout } from "@longhaul/shared/timers";
import { RunAttr, SpanKind, inSpan, runContext } from "@longhaul/shared/telemetry";
import { encodeCancel, encodeDispatch, encodeRunChanged, encodeRunFinished, traceHeaders, type NatsConnection, type NatsNames } from "@longhaul/shared/nats";
import type { EventBus } from "../../core/ports.js";

/**
 * Longest a run.changed notice waits, so that the notices of the runs that
 * change within it leave in one socket write (nats.js writes once per
 * microtask turn in which something was published): at 100 runs/s three
 * notices per run were three writes per run. A watcher learns of a change
 * this much later at most.
 */
export const CHANGED_BATCH_MS = 10;

/**
 * Events over NATS: dispatch and run.finished on JetStream (durable, deduped
 * by message id), cancel and run.changed on core NATS (best effort; Postgres
 * and the heartbeats are the backstop). Change notices are gathered for up
 * to {@link CHANGED_BATCH_MS} and sent together; a later notice of the same
 * run replaces an earlier one still waiting.
 */
export function createEventBus(nc: NatsConnection, names: NatsNames, log: Logger): EventBus & {
  /** Sends the change notices still waiting; at shutdown, before the connection drains. */
  sendWaiting(): void;
} {
  const js: JetStreamClient = jetstream(nc);
  /** Notices waiting to be sent, by subject (one per run). */
  const changed = new Map<string, Uint8Array>();
  let changedTimer: NodeJS.Timeout | undefined;
  /** Sends the waiting notices; called by the timer, and before any other publish, which they join for free. */
  const sendChanged = () => {
    if (changedTimer) clearTimeout(changedTimer);
    changedTimer = undefined;
    if (changed.size === 0) return;
    try {
      for (const [subject, data] of changed) nc.publish(subject, data);
    } catch (err) {
      // Draining or closed at shutdown: notices are best effort.
      log.debug({ err }, "run.changed notices dropped");
    }
    changed.clear();
  };
  let connected = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") connected = false;
      else if (s.type === "reconnect") connected = true;
    }
  })().catch((err: unknown) => log.error({ err }, "nats status loop failed"));

  return {
    sendWaiting: sendChanged,
    // Each publish is a producer span in the run's own trace (a queued run may
    // be dispatched by another run's completion or by the reconciler), and the
    // message carries that span's context to the consumer.
    async publishDispatch(refs, options = {}) {
      sendChanged();
      await Promise.all(
        refs.map((r) =>
          inSpan(
            "run.dispatch",
            {
              kind: SpanKind.PRODUCER,
              parent: runContext(r.traceparent),
              attributes: { [RunAttr.runId]: r.runId, [RunAttr.app]: r.app, [RunAttr.project]: r.project, [RunAttr.attempt]: r.attempt },
            },
            () =>
              js.publish(names.dispatch(r.project, r.app), encodeDispatch({ runId: r.runId, attempt: r.attempt }), {
                msgID: options.republish ? `${r.runId}:${r.attempt}:${Date.now()}` : `${r.runId}:${r.attempt}`,
                headers: traceHeaders(),
                timeout: 5_000,
              }),
          ),
        ),
      );
    },
    async publishFinished(run, options = {}) {
      await inSpan(
        "run.finished",
        {
          kind: SpanKind.PRODUCER,
          parent: runContext(run.traceparent ?? ""),
          attributes: { [RunAttr.runId]: run.id, [RunAttr.app]: run.app, [RunAttr.project]: run.project, [RunAttr.outcome]: run.status },
        },
        async () => {
          const subject = names.finished(run.project);
          const data = encodeRunFinished({
            runId: run.id,
            project: run.project,
            app: run.app,
            status: run.status,
            delivery: run.delivery && { ...run.delivery, traceparent: run.traceparent ?? "" },
            republished: options.republish === true,
          });
          if (options.republish) {
            await js.publish(subject, data, { msgID: `${run.id}:finished:${Date.now()}`, headers: traceHeaders(), timeout: 5_000 });
            return;
          }
          // The first publish waits for no acknowledgement: JetStream stores a
          // plain publish on its subject and dedups it by Nats-Msg-Id all the
          // same. One that is lost (the broker down past the client's
          // reconnect buffer) is what the reconciler repairs anyway, after
          // SCHEDULER_WEBHOOK_REPUBLISH_SECONDS, with an acknowledged
          // republish. Waiting for the ack cost a request per run (an inbox
          // message, a timer and, in nats.js 3.4, an Error built on every
          // resolved request).
          const headers = traceHeaders();
          headers.set("Nats-Msg-Id", `${run.id}:finished`);
          sendChanged();
          nc.publish(subject, data, { headers });
        },
      );
    },
    publishCancel(runId) {
      sendChanged();
      nc.publish(names.cancel, encodeCancel(runId));
    },
    publishChanged(project, runId, status) {
      if (nc.isClosed()) return;
      changed.set(names.runChanged(project, runId), encodeRunChanged(runId, status));
      changedTimer ??= setTimeout(sendChanged, CHANGED_BATCH_MS).unref();
    },
    watchChanges(runId, onChange) {
      const sub = nc.subscribe(names.runChangedOfRun(runId), { callback: () => onChange() });
      return () => sub.unsubscribe();
    },
    watchProject(project, onChange) {
      // The run id is the subject's last token (`<p>.run.changed.<project>.<run_id>`).
      const sub = nc.subscribe(names.runChangedOfProject(project), {
        callback: (_err, msg) => onChange(msg.subject.slice(msg.subject.lastIndexOf(".") + 1)),
      });
      return () => sub.unsubscribe();
    },
    // A PING/PONG round trip: the server has handled every SUB sent before it.
    // Bounded, so that a watch does not hang on a broker outage; the watch's
    // own poll (every 2 s) then still sees each state.
    watchesReady: () =>
      withTimeout(nc.flush(), 2_000, "NATS did not answer a flush within 2 s").catch((err: unknown) => {
        log.warn({ err }, "watch started without a confirmed subscription; it falls back to polling");
      }),
    isConnected: () => connected && !nc.isClosed(),
  };
}
