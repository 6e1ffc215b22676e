import { LonghaulError } from "@longhaul/shared/errors";
import type { Logger } from "@longhaul/shared/logger";
import type { Clock, Dispatch, SchedulerPort } from "./ports.js";

export interface HeartbeatLoopOptions {
  invokerId: string;
  scheduler: SchedulerPort;
  clock: Clock;
  log: Logger;
  /** The attempts held now. */
  held(): Dispatch[];
  /** Called with the attempts the scheduler says are no longer ours. */
  onLost(lost: Dispatch[]): void;
  /** Lease length learned from claims, 0 when none yet. */
  claimLeaseSeconds(): number;
  /** Fixed period (INVOKER_HEARTBEAT_MS); otherwise a third of the lease. */
  overrideMs?: number | undefined;
  /** Most runs named in one Heartbeat call; more are sent in several calls, one after the other. @default 2000 */
  batchSize?: number;
}

/** Lease assumed before the scheduler has told us one. */
const DEFAULT_LEASE_SECONDS = 30;
/**
 * Runs per Heartbeat call. One call for 16,000 held runs blocked the event
 * loop while its message was built and encoded (issue 5: event-loop p99), and
 * the scheduler's UPDATE for it failed in Postgres (its `(id, attempt) in
 * (...)` list of ~8,000 or more rows hits "stack depth limit exceeded"): in
 * batches, each step is short and the scheduler's statement stays small.
 */
const DEFAULT_BATCH_SIZE = 2000;

/**
 * Sends `Heartbeat(invoker_id, held runs)` every lease/3 so the scheduler
 * keeps our leases alive, and aborts the runs it names as lost. A failed
 * beat is logged and the next one tries again: two more chances fit in a lease.
 */
export class HeartbeatLoop {
  private stopTimer: (() => void) | undefined;
  private running = false;
  private leaseSeconds = 0;
  private inFlight: Promise<void> = Promise.resolve();

  constructor(private readonly o: HeartbeatLoopOptions) {}

  /** The period in ms between beats. */
  periodMs(): number {
    if (this.o.overrideMs) return this.o.overrideMs;
    const lease = this.leaseSeconds || this.o.claimLeaseSeconds() || DEFAULT_LEASE_SECONDS;
    return Math.max(100, Math.floor((lease * 1000) / 3));
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  /** Stops beating; waits for a beat in flight. */
  async stop(): Promise<void> {
    this.running = false;
    this.stopTimer?.();
    await this.inFlight;
  }

  /**
   * Sends one beat now (also used by tests): the held runs in batches, sent
   * side by side, each built and sent in an event-loop turn of its own. Not
   * one after the other: under load a batch took seconds at the scheduler,
   * and eight in a row outlasted the 15 s lease (issue 5 benchmark).
   */
  async beat(): Promise<void> {
    const held = this.o.held();
    // An idle invoker owns nothing whose lease could lapse.
    if (held.length === 0) return;
    const size = Math.max(1, this.o.batchSize ?? DEFAULT_BATCH_SIZE);
    let lost = 0;
    const calls: Promise<void>[] = [];
    for (let from = 0; from < held.length; from += size) {
      if (from > 0) await nextTurn();
      const batch = held.slice(from, from + size);
      calls.push(
        this.o.scheduler.heartbeat(this.o.invokerId, batch).then(
          (res) => {
            if (res.leaseSeconds > 0) this.leaseSeconds = res.leaseSeconds;
            if (res.lost.length > 0) this.o.onLost(res.lost);
            lost += res.lost.length;
          },
          (err: unknown) => {
            // The other batches still count: a lease not renewed now has two more beats before it lapses.
            this.o.log.warn({ err: LonghaulError.from(err), held: held.length, batch: batch.length }, "heartbeat failed");
          },
        ),
      );
    }
    await Promise.all(calls);
    this.o.log.debug({ held: held.length, lost }, "heartbeat");
  }

  private schedule(): void {
    if (!this.running) return;
    this.stopTimer = this.o.clock.setTimer(() => {
      this.inFlight = this.beat().finally(() => this.schedule());
    }, this.periodMs());
  }
}

/** Resolves after pending I/O callbacks ran: a long beat leaves the event loop free in between. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
