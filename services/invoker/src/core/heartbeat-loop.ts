import { LonghaulError, type Logger } from "@longhaul/shared";
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
 * its UPDATE takes two bind parameters per run, against Postgres' 65,535: in
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

  /** Sends one beat now (also used by tests): the held runs in batches, one call after the other. */
  async beat(): Promise<void> {
    const held = this.o.held();
    // An idle invoker owns nothing whose lease could lapse.
    if (held.length === 0) return;
    const size = Math.max(1, this.o.batchSize ?? DEFAULT_BATCH_SIZE);
    let lost = 0;
    for (let from = 0; from < held.length; from += size) {
      const batch = held.slice(from, from + size);
      try {
        const res = await this.o.scheduler.heartbeat(this.o.invokerId, batch);
        if (res.leaseSeconds > 0) this.leaseSeconds = res.leaseSeconds;
        if (res.lost.length > 0) this.o.onLost(res.lost);
        lost += res.lost.length;
      } catch (err) {
        // The other batches still go: a lease not renewed now has two more beats before it lapses.
        this.o.log.warn({ err: LonghaulError.from(err), held: held.length, batch: batch.length }, "heartbeat failed");
      }
    }
    this.o.log.debug({ held: held.length, lost }, "heartbeat");
  }

  private schedule(): void {
    if (!this.running) return;
    this.stopTimer = this.o.clock.setTimer(() => {
      this.inFlight = this.beat().finally(() => this.schedule());
    }, this.periodMs());
  }
}
