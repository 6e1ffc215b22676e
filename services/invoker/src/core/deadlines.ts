import type { Clock } from "./ports.js";

/**
 * The deadlines of every held call behind one timer: a Timeout,
 * two closures and a timer list per call add up at 16,000 held calls, and
 * most calls share the 12 h default. The timer is armed for the earliest
 * deadline; when it fires, every call that is due is aborted with
 * `"timeout"` and the timer is armed again for the next one. A call that
 * ends is simply forgotten; a timer left armed for it fires, finds nothing
 * due, and re-arms. The Map keeps insertion order, so a scan is O(held).
 */
export class Deadlines {
  private readonly due = new Map<AbortController, number>();
  private cancelTimer: (() => void) | undefined;
  private armedAt = Infinity;

  constructor(private readonly clock: Clock) {}

  /** Aborts `call` with reason `"timeout"` at `at` (ms since the epoch), unless forgotten before. */
  add(call: AbortController, at: number): void {
    this.due.set(call, at);
    if (at < this.armedAt) this.arm(at);
  }

  forget(call: AbortController): void {
    this.due.delete(call);
    if (this.due.size === 0) this.disarm();
  }

  /** Calls waiting for their deadline (for tests). */
  size(): number {
    return this.due.size;
  }

  private arm(at: number): void {
    this.disarm();
    this.armedAt = at;
    this.cancelTimer = this.clock.setTimer(() => this.fire(), at - this.clock.now());
  }

  private disarm(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.armedAt = Infinity;
  }

  private fire(): void {
    this.cancelTimer = undefined;
    this.armedAt = Infinity;
    const now = this.clock.now();
    let next = Infinity;
    const expired: AbortController[] = [];
    for (const [call, at] of this.due) {
      if (at <= now) expired.push(call);
      else if (at < next) next = at;
    }
    for (const call of expired) this.due.delete(call);
    if (next < Infinity) this.arm(next);
    // After re-arming: an abort runs listeners synchronously, which may add or forget calls.
    for (const call of expired) call.abort("timeout");
  }
}
