import { createHash } from "node:crypto";
import { LonghaulError } from "@longhaul/shared/errors";
import type { Caller, KeyIdentity, KeyResolver } from "./ports.js";

/** Options of {@link createAuthenticator}. */
export interface AuthenticatorOptions {
  /** Seconds a key's answer (project or rejection) is kept. 0: no cache. */
  cacheSeconds: number;
  /** Entries kept at most; the oldest go first. @default 10000 */
  maxEntries?: number;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

type Entry = { expiresAt: number; identity: KeyIdentity | null };

/** Authenticates HTTP callers by their bearer key. */
export interface Authenticator {
  /** The caller behind an `Authorization` header; throws `unauthenticated` (401) otherwise. */
  authenticate(authorization: string | undefined): Promise<Caller>;
}

const BEARER = /^Bearer[ ]+([^\s]+)\s*$/i;

/** The key of an `Authorization: Bearer <key>` header, or undefined. */
export function bearerKey(authorization: string | undefined): string | undefined {
  const m = authorization ? BEARER.exec(authorization) : null;
  return m?.[1];
}

/**
 * Resolves bearer keys through the scheduler, caching each answer briefly
 * (ARCHITECTURE.md: "cached likewise") so a burst of calls costs one RPC;
 * briefly, because a revoked key must be refused everywhere within 5 s.
 * Rejections are cached too, so a client hammering with a bad key does not
 * hammer the scheduler; errors other than `unauthenticated` (scheduler down)
 * are never cached. Keys are held by their sha-256, never in clear.
 */
export function createAuthenticator(resolver: KeyResolver, options: AuthenticatorOptions): Authenticator {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 10_000;
  const ttlMs = options.cacheSeconds * 1000;
  const cache = new Map<string, Entry>();
  // Concurrent first calls with one key share a single RPC.
  const inFlight = new Map<string, Promise<KeyIdentity | null>>();

  const remember = (digest: string, identity: KeyIdentity | null) => {
    if (ttlMs <= 0) return;
    if (cache.size >= maxEntries) {
      const oldest = cache.keys().next().value;
      if (oldest !== undefined) cache.delete(oldest);
    }
    cache.set(digest, { identity, expiresAt: now() + ttlMs });
  };

  const lookup = async (key: string, digest: string): Promise<KeyIdentity | null> => {
    try {
      const identity = await resolver.resolve(key);
      remember(digest, identity);
      return identity;
    } catch (err) {
      const e = LonghaulError.from(err);
      if (e.code !== "unauthenticated") throw e;
      remember(digest, null);
      return null;
    }
  };

  return {
    async authenticate(authorization) {
      const key = bearerKey(authorization);
      if (!key) throw new LonghaulError("unauthenticated", "missing or malformed Authorization: Bearer <api key>");
      const digest = createHash("sha256").update(key).digest("hex");
      const hit = cache.get(digest);
      let identity: KeyIdentity | null;
      if (hit && hit.expiresAt > now()) {
        identity = hit.identity;
      } else {
        if (hit) cache.delete(digest);
        let pending = inFlight.get(digest);
        if (!pending) {
          pending = lookup(key, digest).finally(() => inFlight.delete(digest));
          inFlight.set(digest, pending);
        }
        identity = await pending;
      }
      if (identity === null) throw new LonghaulError("unauthenticated", "invalid API key");
      return { project: identity.project, scopes: identity.scopes, authorization: `Bearer ${key}` };
    },
  };
}
