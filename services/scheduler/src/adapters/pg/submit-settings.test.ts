import { describe, expect, it } from "vitest";
import type { AppSettings } from "../../core/model.js";
import { createSubmitSettingsCache, type SubmitSettings } from "./submit-settings.js";

// The cache's own rules, with a read the test answers by hand (the real read
// against Postgres, and two copies' caches told of each other's changes, are
// in pg-store.test.ts).

function settings(url: string): SubmitSettings {
  return { unlimited: true, app: { name: "a", url } as AppSettings };
}

/** A read that waits until the test answers it, counting the reads started. */
function manualRead() {
  const waiting: Array<{ project: string; app: string; answer(s: SubmitSettings | undefined): void; fail(e: Error): void }> = [];
  const read = (project: string, app: string) =>
    new Promise<SubmitSettings | undefined>((answer, fail) => waiting.push({ project, app, answer, fail }));
  return { read, waiting };
}

describe("submit settings cache", () => {
  it("shares one read among concurrent first submits and then holds the answer", async () => {
    const { read, waiting } = manualRead();
    const cache = createSubmitSettingsCache(read, { ttlMs: 60_000 });
    const both = Promise.all([cache.get("p", "a"), cache.get("p", "a")]);
    expect(waiting).toHaveLength(1);
    waiting[0]!.answer(settings("http://one"));
    expect((await both).map((s) => s?.app?.url)).toEqual(["http://one", "http://one"]);
    expect((await cache.get("p", "a"))?.app?.url).toBe("http://one");
    expect(waiting).toHaveLength(1);
  });

  it("never holds a read that a change overtook, and a submit after the change reads again", async () => {
    const { read, waiting } = manualRead();
    const announced: string[] = [];
    const cache = createSubmitSettingsCache(read, { ttlMs: 60_000, announce: (p) => announced.push(p) });
    const before = cache.get("p", "a");
    cache.changed("p");
    expect(announced).toEqual(["p"]);
    const after = cache.get("p", "a");
    expect(waiting).toHaveLength(2);
    waiting[0]!.answer(settings("http://old"));
    waiting[1]!.answer(settings("http://new"));
    expect((await before)?.app?.url).toBe("http://old");
    expect((await after)?.app?.url).toBe("http://new");
    expect((await cache.get("p", "a"))?.app?.url).toBe("http://new");
    expect(waiting).toHaveLength(2);
  });

  it("a change heard from another copy drops only that project", async () => {
    const { read, waiting } = manualRead();
    const cache = createSubmitSettingsCache(read, { ttlMs: 60_000 });
    const first = [cache.get("p", "a"), cache.get("q", "a")];
    waiting[0]!.answer(settings("http://p"));
    waiting[1]!.answer(settings("http://q"));
    await Promise.all(first);
    cache.forget("p");
    const again = cache.get("p", "a");
    await cache.get("q", "a");
    expect(waiting.map((w) => w.project)).toEqual(["p", "q", "p"]);
    waiting[2]!.answer(settings("http://p2"));
    expect((await again)?.app?.url).toBe("http://p2");
  });

  it("after a broker outage drops everything, a read in flight still answers its callers and is not held", async () => {
    const { read, waiting } = manualRead();
    const cache = createSubmitSettingsCache(read, { ttlMs: 60_000 });
    const inFlight = cache.get("p", "a");
    cache.forgetAll();
    waiting[0]!.answer(settings("http://before"));
    expect((await inFlight)?.app?.url).toBe("http://before");
    const next = cache.get("p", "a");
    expect(waiting).toHaveLength(2);
    waiting[1]!.answer(settings("http://after"));
    expect((await next)?.app?.url).toBe("http://after");
  });

  it("holds neither a failed read nor a missing project, and lets an answer go after its lifetime", async () => {
    const { read, waiting } = manualRead();
    const cache = createSubmitSettingsCache(read, { ttlMs: 50 });
    const failed = cache.get("p", "a");
    waiting[0]!.fail(new Error("postgres away"));
    await expect(failed).rejects.toThrow("postgres away");
    const missing = cache.get("p", "a");
    waiting[1]!.answer(undefined);
    expect(await missing).toBeUndefined();
    const found = cache.get("p", "a");
    waiting[2]!.answer(settings("http://x"));
    await found;
    await cache.get("p", "a");
    expect(waiting).toHaveLength(3);
    await new Promise((r) => setTimeout(r, 80));
    void cache.get("p", "a");
    expect(waiting).toHaveLength(4);
    waiting[3]!.answer(settings("http://x"));
  });
});
