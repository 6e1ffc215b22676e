import { describe, expect, it } from "vitest";
import { createCapacity } from "./capacity.js";

describe("createCapacity", () => {
  it("counts slots and wakes waiters when one frees", async () => {
    const seen: number[] = [];
    const c = createCapacity(2, (n) => seen.push(n));
    const a = c.acquire();
    const b = c.acquire();
    expect(c.free()).toBe(0);
    let woke = false;
    const waiting = c.whenFree().then(() => (woke = true));
    await Promise.resolve();
    expect(woke).toBe(false);
    a();
    a(); // releasing twice gives back one slot only
    await waiting;
    expect(woke).toBe(true);
    expect(c.inUse()).toBe(1);
    b();
    expect(seen).toEqual([1, 2, 1, 0]);
  });

  it("stops waiting when the signal aborts", async () => {
    const c = createCapacity(1);
    c.acquire();
    const stop = new AbortController();
    const waiting = c.whenFree(stop.signal);
    stop.abort();
    await waiting;
    expect(c.free()).toBe(0);
  });
});
