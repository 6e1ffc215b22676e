import { status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import type { Logger } from "@longhaul/shared/logger";
import type { schedulerPb } from "@longhaul/shared/proto";
import type { Capacity } from "../../core/capacity.js";
import type { ClaimedRun, Dispatch } from "../../core/ports.js";
import { toClaimedRun, type HandoffDuplex } from "./scheduler-client.js";

export interface HandoffClientOptions {
  /** Opens a Handoff stream (SchedulerClient.openHandoff). */
  open(): HandoffDuplex;
  invokerId: string;
  capacity: Capacity;
  /** Call slots kept free for the stream (INVOKER_HANDOFF_CREDITS, > 0). */
  credits: number;
  /**
   * What this process may have called and the scheduler may count as its own
   * (RunInvoker.ownedRuns); undefined when it cannot say for sure (then no
   * stream is ever repaired).
   */
  owned(): Dispatch[] | undefined;
  /** Holds a run the stream brought; `release` frees its slot (RunInvoker.take). */
  take(run: ClaimedRun, release: () => void): void;
  log: Logger;
  /** Wait before opening a stream again. @default 500 ms doubling to 30 s */
  retry?: { initialMs: number; maxMs: number };
  /** How long stop() waits for the scheduler to end the stream. @default 10 s */
  stopTimeoutMs?: number;
}

export interface HandoffClient {
  /** No more runs: the scheduler sends what it started for us, then ends the stream. */
  stop(): Promise<void>;
  /**
   * Ids of this process's streams that ended in the last ENDED_KEPT_MS, for
   * heartbeats: what the scheduler committed for one of them after it ended
   * here is handed back by the next beat.
   */
  endedStreams(): string[];
}

/** How long an ended stream is named in heartbeats (the server finds a dead stream within ~40 s). */
const ENDED_KEPT_MS = 120_000;

/** A stream open this long counts as healthy: its successor opens without backoff. */
const STABLE_MS = 5_000;

/** One open stream and the call slots its credits keep. */
interface Open {
  id: string;
  call: HandoffDuplex;
  slots: Array<() => void>;
  ended: boolean;
}

/**
 * Keeps one Handoff stream open to a scheduler copy: says who we are, which
 * of our streams ended and what we own (so the scheduler hands back what an
 * ended stream carried and we never received), then
 * keeps up to `credits` call slots offered. Each run that arrives is held
 * like a claimed one. A run that arrives beyond our credits is held too
 * (it is ours already in Postgres) on a slot of its own.
 *
 * Only one stream at a time, and a new one opens only once the old one has
 * ended (its runs are held by then, or never will be), so the hello's list
 * is complete for every stream it names as ended.
 */
export function startHandoff(o: HandoffClientOptions): HandoffClient {
  const retry = o.retry ?? { initialMs: 500, maxMs: 30_000 };
  let delay = retry.initialMs;
  let current: Open | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopping = false;
  let onEnded: (() => void) | undefined;
  let topUpQueued = false;
  let waitingForRoom = false;
  /** Streams that ended, oldest first. */
  const endedStreams: Array<{ id: string; at: number }> = [];
  const endedIds = () => {
    while (endedStreams.length > 0 && Date.now() - endedStreams[0]!.at > ENDED_KEPT_MS) endedStreams.shift();
    return endedStreams.map((e) => e.id);
  };

  const topUp = () => {
    topUpQueued = false;
    const s = current;
    if (!s || s.ended || stopping) return;
    const missing = o.credits - s.slots.length;
    // Credits go out a quarter of the window at a time: fewer messages under load.
    if (missing < Math.max(1, Math.floor(o.credits / 4))) return;
    const n = Math.min(missing, o.capacity.free());
    if (n <= 0) {
      // Full: offer again once a call ends (ours, a dispatched one or a sync one).
      if (!waitingForRoom) {
        waitingForRoom = true;
        void o.capacity.whenFree().then(() => {
          waitingForRoom = false;
          queueTopUp();
        });
      }
      return;
    }
    for (let i = 0; i < n; i++) s.slots.push(o.capacity.acquire());
    s.call.write({ message: { $case: "credit", value: { runs: n } } });
  };
  const queueTopUp = () => {
    if (topUpQueued) return;
    topUpQueued = true;
    setImmediate(topUp);
  };

  const connect = () => {
    timer = undefined;
    if (stopping) return;
    const call = o.open();
    const s: Open = { id: randomUUID(), call, slots: [], ended: false };
    const openedAt = Date.now();
    current = s;
    // Built now, with every earlier stream ended: nothing more can arrive on them.
    const owned = o.owned();
    call.write({
      message: {
        $case: "hello",
        value: {
          invokerId: o.invokerId,
          held: (owned ?? []).map((d) => ({ runId: d.runId, attempt: d.attempt })),
          uptimeSeconds: 0,
          streamId: s.id,
          endedStreams: owned ? endedIds() : [],
        },
      },
    });
    queueTopUp();
    call.on("data", (res: schedulerPb.HandoffResponse) => {
      // A run of a stream that ended is not ours to start: the next hello hands it back.
      if (current !== s || s.ended || !res.run) return;
      delay = retry.initialMs;
      o.take(toClaimedRun(res.run), s.slots.pop() ?? o.capacity.acquire());
      queueTopUp();
    });
    const ended = (err?: ServiceError) => {
      if (s.ended) return;
      s.ended = true;
      endedStreams.push({ id: s.id, at: Date.now() });
      for (const release of s.slots.splice(0)) release();
      if (current === s) current = undefined;
      if (stopping) {
        onEnded?.();
        return;
      }
      // A stream that lived a while broke on its own: open the next one soon.
      if (Date.now() - openedAt > STABLE_MS) delay = retry.initialMs;
      if (err?.code === GrpcStatus.UNIMPLEMENTED) {
        // An older scheduler copy: runs come by dispatch until a newer one answers.
        o.log.info("the scheduler does not serve Handoff; runs come by dispatch");
        delay = retry.maxMs;
      } else if (err && err.code !== GrpcStatus.CANCELLED) {
        o.log.warn({ err: err.details || err.message, retry_in_ms: delay }, "handoff stream broke; opening another");
      }
      timer = setTimeout(connect, delay);
      delay = Math.min(delay * 2, retry.maxMs);
    };
    call.on("error", ended);
    call.on("end", () => ended());
  };

  connect();
  return {
    endedStreams: endedIds,
    async stop() {
      stopping = true;
      if (timer) clearTimeout(timer);
      const s = current;
      if (!s || s.ended) return;
      await new Promise<void>((resolve) => {
        const giveUp = setTimeout(() => {
          s.call.cancel();
          resolve();
        }, o.stopTimeoutMs ?? 10_000);
        onEnded = () => {
          clearTimeout(giveUp);
          resolve();
        };
        s.call.write({ message: { $case: "stop", value: {} } });
      });
    },
  };
}
