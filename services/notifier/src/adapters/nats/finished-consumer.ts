import { UUID } from "@longhaul/shared/domain";
import { jetstream, type ConsumerMessages, type JsMsg } from "@nats-io/jetstream";
import type { Logger } from "@longhaul/shared/logger";
import { context } from "@longhaul/shared/telemetry";
import { contextFromHeaders, decodeRunFinished, ensureConsumer, type NatsConnection, type NatsNames } from "@longhaul/shared/nats";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { AcceptResult, NotifierCore } from "../../core/notifier-core.js";
import type { RunStatusName } from "../../core/ports.js";

/** Events handled at once; their deliveries are inserted together (one statement per short window). */
const CONCURRENCY = 64;
/** Wait before an event that could not be handled is offered again. */
const RETRY_DELAY_MS = 5_000;
/**
 * An event older than this when taken is treated as offered before: its
 * delivery is recorded before the POST (a first attempt made before its
 * record must end well before the scheduler's 30-s republish).
 */
const FRESH_MS = 5_000;
/**
 * The consumer's ack wait: handling an event takes a few calls and at most
 * one webhook attempt (a first attempt made before its record; see
 * NotifierCoreOptions.attemptBeforeRecord, on only for attempts of at most a
 * quarter of this).
 */
export const ACK_WAIT_SECONDS = 60;

/** Options of {@link startFinishedConsumer}. */
export interface FinishedConsumerOptions {
  nc: NatsConnection;
  jsm: JetStreamManager;
  names: NatsNames;
  core: NotifierCore;
  log: Logger;
}

/**
 * Consumes `run.finished` with the durable `notifier` consumer: records the
 * delivery (and starts its first attempt), then acks.
 * Any failure before the ack leaves the event to be offered again (the
 * core is idempotent), so no finished run is lost to a crash.
 */
export async function startFinishedConsumer(options: FinishedConsumerOptions): Promise<{ stop(): Promise<void> }> {
  const { names, core, log } = options;
  await ensureConsumer(options.jsm, names.eventsStream, names.notifierConsumer, names.finishedAll, ACK_WAIT_SECONDS);
  const consumer = await jetstream(options.nc).consumers.get(names.eventsStream, names.notifierConsumer);
  // Pull requests of 5 s (the client's default is 30 s, and a pull lost with
  // the consumer's leader, a NATS node killed, stalled webhooks up to that long
  // before the next one: npm run chaos).
  const messages: ConsumerMessages = await consumer.consume({ max_messages: CONCURRENCY * 2, expires: 5_000 });
  const handling = new Set<Promise<void>>();
  /** Events whose first attempt is under way, acked when it is recorded. */
  const acking = new Set<Promise<void>>();

  async function handle(m: JsMsg): Promise<void> {
    // RunFinishedEvent (events.proto), or the JSON of an older scheduler.
    const e = decodeRunFinished(m.data);
    // Run ids are UUIDs: anything else would fail in Postgres on every redelivery.
    if (!e || !UUID.test(e.runId)) {
      // A malformed event will never parse: drop it rather than loop on it.
      log.error({ subject: m.subject, seq: m.seq }, "malformed run.finished event dropped");
      m.term("malformed");
      return;
    }
    // Without the delivery (older schedulers, the reconciler's republish,
    // large answers) the core asks the scheduler (GetDeliveryInput).
    const d = e.delivery;
    const event = {
      runId: e.runId,
      project: e.project,
      // Sent before, or waiting long enough that the scheduler may send it again
      // (it republishes a webhook no notifier took within 30 s).
      repeated: m.redelivered || e.republished || Date.now() - m.time.getTime() > FRESH_MS,
      ...(d && e.app && e.status
        ? {
            input: {
              runId: e.runId,
              project: e.project,
              app: e.app,
              webhookUrl: d.webhookUrl,
              status: e.status as RunStatusName,
              statusCode: d.statusCode,
              contentType: d.contentType,
              body: Buffer.from(d.body.buffer, d.body.byteOffset, d.body.byteLength),
              bodyTruncated: d.bodyTruncated,
              errorCode: d.errorCode,
              errorMessage: d.errorMessage,
              traceparent: d.traceparent,
            },
          }
        : {}),
    };
    await context.with(contextFromHeaders(m.headers), async () => {
      let accepted: AcceptResult;
      try {
        // Resolves once the delivery is committed (its first attempt under way),
        // or once a first attempt started that records the delivery when it ends.
        accepted = await core.acceptFinished(event);
      } catch (err) {
        log.warn({ err, run_id: event.runId }, "run.finished not handled; offered again later");
        m.nak(RETRY_DELAY_MS);
        return;
      }
      if (accepted.result !== "accepted" || !accepted.recorded) return m.ack();
      // Acked once the attempt recorded the delivery; the handler's slot is free meanwhile.
      const acked = accepted.recorded.then(
        () => m.ack(),
        (err: unknown) => {
          log.warn({ err, run_id: event.runId }, "webhook attempt not recorded; run.finished offered again later");
          m.nak(RETRY_DELAY_MS);
        },
      );
      acking.add(acked);
      void acked.finally(() => acking.delete(acked));
    });
  }

  const loop = (async () => {
    for await (const m of messages) {
      const p = handle(m).catch((err: unknown) => log.error({ err }, "run.finished handler failed"));
      handling.add(p);
      void p.finally(() => handling.delete(p));
      if (handling.size >= CONCURRENCY) await Promise.race(handling);
    }
  })().catch((err: unknown) => log.error({ err }, "run.finished consumer stopped"));

  return {
    async stop() {
      await messages.close();
      await loop;
      await Promise.all(handling);
      await Promise.all(acking);
    },
  };
}
