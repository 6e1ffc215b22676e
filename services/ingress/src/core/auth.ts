import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
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

/** A key's answer: its identity, or null for a rejected key (lru-cache keeps objects, not null). */
type Answer = { identity: KeyIdentity | null };

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
  const ttlMs = options.cacheSeconds * 1000;

  const lookup = async (key: string): Promise<Answer> => {
    try {
      return { identity: await resolver.resolve(key) };
    } catch (err) {
      const e = LonghaulError.from(err);
      if (e.code !== "unauthenticated") throw e;
      return { identity: null };
    }
  };
  // A rejected fetch is not kept, so an outage is never cached; concurrent
  // first calls with one key share a single fetch (lru-cache's fetchMethod).
  const cache =
    ttlMs > 0
      ? new LRUCache<string, Answer, string>({
          max: options.maxEntries ?? 10_000,
          ttl: ttlMs,
          ttlResolution: 0,
          ...(options.now ? { perf: { now: options.now } } : {}),
          fetchMethod: (_digest, _stale, { context }) => lookup(context),
        })
      : undefined;

  return {
    async authenticate(authorization) {
      const key = bearerKey(authorization);
      if (!key) throw new LonghaulError("unauthenticated", "missing or malformed Authorization: Bearer <api key>");
      const digest = createHash("sha256").update(key).digest("hex");
      const answer = cache ? await cache.fetch(digest, { context: key }) : await lookup(key);
      const identity = answer?.identity ?? null;
      if (identity === null) throw new LonghaulError("unauthenticated", "invalid API key");
      return { project: identity.project, scopes: identity.scopes, authorization: `Bearer ${key}` };
    },
  };
}
