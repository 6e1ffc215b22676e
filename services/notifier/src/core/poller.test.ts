import { describe, expect, it, vi } from "vitest";
import { startPoller } from "./poller.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("poller", () => {
  it("looks at once, again at once while it finds work, then at its interval", async () => {
    const found = [3, 1, 0, 0];
    let calls = 0;
    const p = startPoller({ poll: async () => found[calls++] ?? 0, intervalMs: 10_000 });
    await sleep(100);
    expect(calls).toBe(3);
    await p.stop();
  });

  it("slows down while it finds nothing (up to idleMaxMs), and wakeIn brings a look forward", async () => {
    vi.useFakeTimers();
    try {
      const at: number[] = [];
      const t0 = Date.now();
      const p = startPoller({ poll: async () => (at.push(Date.now() - t0), 0), intervalMs: 50, idleMaxMs: 400 });
      await vi.advanceTimersByTimeAsync(1_500);
      // After the first look the pause doubles: 100, 200, 400, then stays at 400.
      expect(at).toEqual([0, 100, 300, 700, 1100, 1500]);
      p.wakeIn(20); // a retry falls due in 20 ms: looked for then, not at 1900
      await vi.advanceTimersByTimeAsync(20);
      expect(at.at(-1)).toBe(1520);
      // The pause starts over from the full rate: 100 after that empty look, not 400.
      await vi.advanceTimersByTimeAsync(100);
      expect(at.at(-1)).toBe(1620);
      await p.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it("looks at once when woken, and once more when woken during a look", async () => {
    let calls = 0;
    let release: (() => void) | undefined;
    const p = startPoller({
      poll: async () => {
        calls += 1;
        if (calls === 2) await new Promise<void>((r) => (release = r));
        return 0;
      },
      intervalMs: 10_000,
    });
    await sleep(100);
    expect(calls).toBe(1);
    p.wake();
    await sleep(100);
    expect(calls).toBe(2);
    p.wake(); // during the second look
    release!();
    await sleep(100);
    expect(calls).toBe(3);
    await p.stop();
    p.wake();
    await sleep(100);
    expect(calls).toBe(3);
  });

  it("keeps going after errors and reports them", async () => {
    const results: boolean[] = [];
    let calls = 0;
    const p = startPoller({
      poll: async () => {
        calls += 1;
        if (calls === 1) throw new Error("database away");
        return 0;
      },
      intervalMs: 10,
      onResult: (ok) => results.push(ok),
    });
    await sleep(300);
    await p.stop();
    expect(results[0]).toBe(false);
    expect(results.slice(1).every(Boolean)).toBe(true);
    expect(results.length).toBeGreaterThan(2);
  });
});
