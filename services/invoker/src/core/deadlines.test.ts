import { describe, expect, it } from "vitest";
import { Deadlines } from "./deadlines.js";
import { FakeClock } from "../testing/fakes.js";

describe("Deadlines", () => {
  it("aborts each call at its own deadline with one timer armed at a time", async () => {
    const clock = new FakeClock();
    const d = new Deadlines(clock);
    const [a, b, c] = [new AbortController(), new AbortController(), new AbortController()];
    d.add(a, clock.now() + 3_000);
    d.add(b, clock.now() + 1_000);
    d.add(c, clock.now() + 2_000);
    expect(clock.pending()).toBe(1);
    await clock.advance(999);
    expect([a, b, c].map((x) => x.signal.aborted)).toEqual([false, false, false]);
    await clock.advance(1);
    expect([a, b, c].map((x) => x.signal.aborted)).toEqual([false, true, false]);
    expect(b.signal.reason).toBe("timeout");
    d.forget(c); // ended before its deadline
    await clock.advance(2_000);
    expect([a, b, c].map((x) => x.signal.aborted)).toEqual([true, true, false]);
    expect(d.size()).toBe(0);
    expect(clock.pending()).toBe(0);
  });

  it("disarms once nothing is held, and re-arms for a later call", async () => {
    const clock = new FakeClock();
    const d = new Deadlines(clock);
    const a = new AbortController();
    d.add(a, clock.now() + 1_000);
    d.forget(a);
    expect(clock.pending()).toBe(0);
    const b = new AbortController();
    d.add(b, clock.now() + 5_000);
    await clock.advance(5_000);
    expect(b.signal.aborted).toBe(true);
    expect(a.signal.aborted).toBe(false);
  });
});
