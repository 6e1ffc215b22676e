import { describe, expect, it } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import { bearerKey, createAuthenticator } from "./auth.js";
import type { KeyResolver } from "./ports.js";

function fakeResolver(keys: Record<string, string>) {
  const calls: string[] = [];
  let down = false;
  const resolver: KeyResolver = {
    async resolve(key) {
      calls.push(key);
      if (down) throw new LonghaulError("unavailable", "scheduler down");
      const project = keys[key];
      if (!project) throw new LonghaulError("unauthenticated", "unknown key");
      return { project, scopes: ["read", "invoke", "admin"] as const };
    },
  };
  return { resolver, calls, setDown: (d: boolean) => (down = d) };
}

describe("bearerKey", () => {
  it("accepts only Bearer tokens", () => {
    expect(bearerKey("Bearer abc")).toBe("abc");
    expect(bearerKey("bearer  abc ")).toBe("abc");
    expect(bearerKey("Basic abc")).toBeUndefined();
    expect(bearerKey("Bearer")).toBeUndefined();
    expect(bearerKey(undefined)).toBeUndefined();
  });
});

describe("createAuthenticator", () => {
  it("resolves a key once per cache period, then again after it", async () => {
    let t = 1_000;
    const f = fakeResolver({ k1: "dev" });
    const auth = createAuthenticator(f.resolver, { cacheSeconds: 5, now: () => t });
    expect(await auth.authenticate("Bearer k1")).toEqual({ project: "dev", scopes: ["read", "invoke", "admin"], authorization: "Bearer k1" });
    await auth.authenticate("Bearer k1");
    expect(f.calls).toEqual(["k1"]);
    t = 6_001;
    await auth.authenticate("Bearer k1");
    expect(f.calls).toEqual(["k1", "k1"]);
  });

  it("answers unauthenticated for a missing or unknown key, and caches the rejection", async () => {
    const f = fakeResolver({});
    const auth = createAuthenticator(f.resolver, { cacheSeconds: 5 });
    await expect(auth.authenticate(undefined)).rejects.toMatchObject({ code: "unauthenticated" });
    await expect(auth.authenticate("Bearer nope")).rejects.toMatchObject({ code: "unauthenticated" });
    await expect(auth.authenticate("Bearer nope")).rejects.toMatchObject({ code: "unauthenticated" });
    expect(f.calls).toEqual(["nope"]);
  });

  it("never caches a scheduler outage", async () => {
    const f = fakeResolver({ k1: "dev" });
    const auth = createAuthenticator(f.resolver, { cacheSeconds: 5 });
    f.setDown(true);
    await expect(auth.authenticate("Bearer k1")).rejects.toMatchObject({ code: "unavailable" });
    f.setDown(false);
    await expect(auth.authenticate("Bearer k1")).resolves.toMatchObject({ project: "dev" });
  });

  it("shares one lookup between concurrent first calls", async () => {
    const f = fakeResolver({ k1: "dev" });
    const auth = createAuthenticator(f.resolver, { cacheSeconds: 5 });
    await Promise.all([1, 2, 3].map(() => auth.authenticate("Bearer k1")));
    expect(f.calls).toEqual(["k1"]);
  });
});
