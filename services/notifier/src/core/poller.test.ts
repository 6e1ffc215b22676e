import { describe, expect, it } from "vitest";
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
