import { sleep } from "@longhaul/shared/timers";
import { jetstream, type JsMsg, type ConsumerMessages } from "@nats-io/jetstream";
import type { Logger } from "@longhaul/shared/logger";
import { context } from "@longhaul/shared/telemetry";
import { contextFromHeaders, decodeDispatch, ensureConsumer, ensureStreams, type NatsConnection, type NatsNames, type StreamSettings } from "@longhaul/shared/nats";
import { createCapacity, type Capacity } from "../../core/capacity.js";
import type { Dispatch } from "../../core/ports.js";
import type { ClaimDecision } from "../../core/run-invoker.js";

/** Delay before a dispatch is redelivered when the scheduler cannot answer a claim. */
export const NAK_DELAY_MS = 2_000;
/**
 * JetStream ack wait of the `invoker` consumer: it covers the claim only (the
 * message is acked right after it), never the call. Short, because a message
 * handed to a paused or dying invoker waits this long before another invoker
 * gets it.
 */
const ACK_WAIT_SECONDS = 10;

export interface DispatchConsumerOptions {
  nc: NatsConnection;
  names: NatsNames;
  capacity: Capacity;
  log: Logger;
  /** Claims one attempt (RunInvoker.claim). */
  claim(dispatch: Dispatch): Promise<ClaimDecision>;
  /** Limits of the mesh's streams (LONGHAUL_NATS_REPLICAS, LONGHAUL_EVENTS_*). @default DEFAULT_STREAM_SETTINGS */
  streams?: Partial<StreamSettings>;
  /** Most messages asked for in one pull. @default 256 */
  batch?: number;
  /**
   * ClaimRun calls in flight at once. Without a bound, a backlog would send
   * thousands of claims to the scheduler together and push them past their
   * deadline. @default 64
   */
  maxConcurrentClaims?: number;
  /** How long one pull waits for messages, ms (≥ 1000). @default 5000 */
  expiresMs?: number;
}

export interface DispatchConsumer {
  /** Stops pulling; messages already taken are still handled. Waits for the pull loop to end. */
  stop(): Promise<void>;
}

/** Reads a DispatchEvent (events.proto, or an older scheduler's JSON); undefined when the payload is not one. */
export function parseDispatch(data: Uint8Array): Dispatch | undefined {
  const e = decodeDispatch(data);
  return e && { runId: e.runId, attempt: e.attempt };
}

/**
 * Pulls dispatches from the work queue, never more than there are free call
 * slots (backpressure: at INVOKER_MAX_IN_FLIGHT it stops pulling and the
 * messages wait in the stream). Each message is claimed; claimed or refused
 * → ack; scheduler unavailable → nak for a later redelivery. The call itself
 * never depends on JetStream: ownership lives in the scheduler.
 */
export async function startDispatchConsumer(o: DispatchConsumerOptions): Promise<DispatchConsumer> {
  const jsm = await ensureStreams(o.nc, o.names, o.streams);
  await ensureConsumer(jsm, o.names.dispatchStream, o.names.invokerConsumer, o.names.dispatchAll, ACK_WAIT_SECONDS);
  const consumer = await jetstream(o.nc).consumers.get(o.names.dispatchStream, o.names.invokerConsumer);
  const batch = o.batch ?? 256;
  const expires = Math.max(1000, o.expiresMs ?? 5000);
  const claimSlots = createCapacity(o.maxConcurrentClaims ?? 64);
  const stopping = new AbortController();
  let current: ConsumerMessages | undefined;

  const handle = async (msg: JsMsg): Promise<void> => {
    const dispatch = parseDispatch(msg.data);
    if (!dispatch) {
      o.log.error({ subject: msg.subject, seq: msg.seq }, "dispatch payload is not {run_id, attempt}; dropped");
      // Ack, not term: a work queue then deletes it, and a redelivery could not fix it.
      msg.ack();
      return;
    }
    // The claim continues the trace of the dispatch message.
    const ctx = contextFromHeaders(msg.headers);
    const claimed = claimSlots.acquire();
    const decision = await context.with(ctx, () => o.claim(dispatch)).finally(claimed);
    switch (decision.kind) {
      case "claimed":
        msg.ack();
        context.with(ctx, () => decision.start());
        return;
      case "refused":
        msg.ack();
        return;
      case "retry":
        msg.nak(NAK_DELAY_MS);
        return;
    }
  };

  const loop = async (): Promise<void> => {
    while (!stopping.signal.aborted) {
      await o.capacity.whenFree(stopping.signal);
      await claimSlots.whenFree(stopping.signal);
      const max = Math.min(o.capacity.free(), claimSlots.free(), batch);
      if (stopping.signal.aborted) break;
      if (max === 0) continue;
      try {
        current = await consumer.fetch({ max_messages: max, expires });
        if (stopping.signal.aborted) current.stop();
        for await (const msg of current) {
          if (stopping.signal.aborted) {
            // Taken as we stopped: hand it straight to another invoker instead of
            // letting it wait out the ack wait.
            msg.nak();
            continue;
          }
          handle(msg).catch((err: unknown) => {
            o.log.error({ err, seq: msg.seq }, "dispatch handling failed");
            msg.nak(NAK_DELAY_MS);
          });
        }
      } catch (err) {
        if (stopping.signal.aborted) break;
        o.log.warn({ err }, "pulling dispatches failed; retrying");
        await sleep(1000, stopping.signal);
      } finally {
        current = undefined;
      }
    }
  };

  const running = loop().catch((err: unknown) => o.log.error({ err }, "dispatch loop failed"));
  o.log.info({ stream: o.names.dispatchStream, consumer: o.names.invokerConsumer }, "consuming dispatches");
  return {
    async stop() {
      stopping.abort();
      current?.stop();
      await running;
    },
  };
}
