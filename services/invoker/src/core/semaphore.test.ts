import { describe, expect, it } from "vitest";
import { createSemaphore } from "./semaphore.js";
import { settle } from "../testing/fakes.js";

describe("createSemaphore", () => {
  it("grants up to the limit at once, then one waiter per release, in order", async () => {
    const s = createSemaphore(2);
    const got: number[] = [];
    const releases: Array<() => void> = [];
    for (let i = 0; i < 5; i++) {
      void s.acquire().then((release) => {
        got.push(i);
        releases.push(release);
      });
    }
    await settle();
    expect(got).toEqual([0, 1]);
    expect(s.waiting()).toBe(3);
    releases[0]!();
    releases[0]!(); // twice is once
    await settle();
    expect(got).toEqual([0, 1, 2]);
    expect(s.inUse()).toBe(2);
    for (const r of releases) r();
    await settle();
    for (const r of releases) r();
    await settle();
    expect(got).toEqual([0, 1, 2, 3, 4]);
    for (const r of releases) r();
    expect(s.inUse()).toBe(0);
    expect(s.waiting()).toBe(0);
  });

  it("serves thousands of waiters one per release", async () => {
    const s = createSemaphore(1);
    let done = 0;
    await Promise.all(
      Array.from({ length: 5000 }, async () => {
        const release = await s.acquire();
        done += 1;
        release();
      }),
    );
    expect(done).toBe(5000);
    expect(s.inUse()).toBe(0);
  });
});
