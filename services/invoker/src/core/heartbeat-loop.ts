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
  /**
   * Every attempt this process may have called (RunInvoker.ownedRuns), named
   * instead of `held` while there are ended Handoff streams to repair;
   * undefined when it cannot say for sure.
   */
  owned?(): Dispatch[] | undefined;
  /** Handoff streams of this process that ended lately (HandoffClient.endedStreams). */
  endedStreams?(): string[];
  /** Called with the attempts the scheduler says are no longer ours. */
  onLost(lost: Dispatch[]): void;
  /** Lease length learned from claims, 0 when none yet. */
  claimLeaseSeconds(): number;
  /** Fixed period (INVOKER_HEARTBEAT_MS); otherwise a third of the lease. */
  overrideMs?: number | undefined;
  /** Most runs named in one Heartbeat call; more are sent in several calls. @default 20000 */
  batchSize?: number;
}

/** Lease assumed before the scheduler has told us one. */
const DEFAULT_LEASE_SECONDS = 30;
/**
 * Runs per Heartbeat call. A beat renews the invoker's own lease (one row,
 * however many calls it holds) and asks which of the runs it names are still
 * its own, in one statement: one call per beat keeps Postgres at one commit
 * per invoker per beat (npm run bench:held). Above this, a beat is split so
 * that no single message blocks the event loop for long while it is encoded.
 */
const DEFAULT_BATCH_SIZE = 20_000;

/**
 * Sends `Heartbeat(invoker_id, held runs)` every lease/3 so the scheduler
 * keeps this invoker's lease alive (one lease per invoker, not per call), and
 * aborts the runs it names as no longer ours. A failed
 * beat is logged and the next one tries again: two more chances fit in a lease.
 */
export class HeartbeatLoop {
  private stopTimer: (() => void) | undefined;
  private running = false;
  private leaseSeconds = 0;
  private inFlight: Promise<void> = Promise.resolve();
  private nextAt = 0;
  private beating = false;

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
   * and eight in a row outlasted the 15 s lease (the held-calls benchmark).
   */
  async beat(): Promise<void> {
    const size = Math.max(1, this.o.batchSize ?? DEFAULT_BATCH_SIZE);
    const heldNow = this.o.held();
    // With Handoff streams that ended lately, one beat names everything this
    // process may have called, and the streams: what the scheduler started
    // for us on them and we never received goes back to the queue. Only in
    // one call (a split list would hand back what the other half names).
    const ended = this.o.endedStreams?.() ?? [];
    const owned = ended.length > 0 ? this.o.owned?.() : undefined;
    const repair = owned !== undefined && owned.length <= size;
    const held = repair ? owned : heldNow;
    // An idle invoker owns nothing whose lease could lapse.
    if (held.length === 0 && !repair) return;
    // Only what was held when the beat was built can be lost (a claim answered meanwhile is ours).
    const holding = new Set(heldNow.map((h) => `${h.runId}:${h.attempt}`));
    let lost = 0;
    const calls: Promise<void>[] = [];
    for (let from = 0; from < Math.max(held.length, 1); from += size) {
      if (from > 0) await nextTurn();
      const batch = held.slice(from, from + size);
      calls.push(
        this.o.scheduler.heartbeat(this.o.invokerId, batch, repair ? ended : []).then(
          (res) => {
            if (res.leaseSeconds > 0) this.leaseSeconds = res.leaseSeconds;
            const mine = res.lost.filter((l) => holding.has(`${l.runId}:${l.attempt}`));
            if (mine.length > 0) this.o.onLost(mine);
            lost += mine.length;
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

  /**
   * Brings the next beat forward when it is due later than one period from
   * now: the first claim teaches the lease, and a timer set before it (with
   * the 30-s default) would let a shorter lease run out before the first beat.
   */
  nudge(): void {
    if (!this.running || this.beating) return;
    if (this.nextAt - this.o.clock.now() <= this.periodMs()) return;
    this.stopTimer?.();
    this.schedule();
  }

  private schedule(): void {
    if (!this.running) return;
    const period = this.periodMs();
    this.nextAt = this.o.clock.now() + period;
    this.stopTimer = this.o.clock.setTimer(() => {
      this.beating = true;
      this.inFlight = this.beat().finally(() => {
        this.beating = false;
        this.schedule();
      });
    }, period);
  }
}

/** Resolves after pending I/O callbacks ran: a long beat leaves the event loop free in between. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
