import { UUID } from "@longhaul/shared/domain";
import { createHash, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { LRUCache } from "lru-cache";
import { LonghaulError } from "@longhaul/shared/errors";
import type { Logger } from "@longhaul/shared/logger";
import type { TenancyStore } from "./ports.js";
import {
  SCOPES,
  UNLIMITED,
  checkLimits,
  checkProjectName,
  requireScope,
  type AuditRecord,
  type KeyCaller,
  type KeyRecord,
  type ProjectLimits,
  type ProjectRecord,
  type ProjectUsage,
  type Scope,
} from "./tenancy-model.js";

/** Settings of {@link createTenancy}. */
export interface TenancySettings {
  /** The operator key (LONGHAUL_ADMIN_KEY); undefined: the admin API answers no one. */
  adminKey: string | undefined;
  /** The operator key being rotated out (LONGHAUL_ADMIN_KEY_PREVIOUS), accepted too while set. */
  previousAdminKey?: string | undefined;
  /** Limits a new project starts with (LONGHAUL_DEFAULT_LIMITS). */
  defaultLimits: ProjectLimits;
  /**
   * How long a key's answer is kept in memory. Revocation must reach every
   * copy within 5 s, with the gateway's own cache on top: keep it short.
   */
  authCacheMs: number;
}

/** A project with today's usage. */
export interface ProjectView extends ProjectRecord {
  usage: ProjectUsage;
}

/** A key just made: `secret` is shown this once. */
export interface CreatedKey extends KeyRecord {
  secret: string;
}

/** How long a watch stream's row lives without renewal (a crashed copy's rows go after it). */
export const WATCH_STREAM_TTL_SECONDS = 30;

const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._:@-]{0,63}$/;

const sha256 = (s: string) => createHash("sha256").update(s).digest();

/** A new key's secret: `lh_` and 32 random bytes, base64url (256 bits). */
export function newKeySecret(): string {
  return `lh_${randomBytes(32).toString("base64url")}`;
}

/** The part of a secret listings show: enough to tell keys apart, too little to matter. */
export function keyPrefix(secret: string): string {
  return secret.slice(0, 11);
}

/** Checks a key request: a name and known scopes, each once; at least one. */
export function checkKeyInput(input: { name: string; scopes: readonly string[] }): { name: string; scopes: Scope[] } {
  if (!KEY_NAME.test(input.name)) {
    throw new LonghaulError("invalid_argument", "name: 1 to 64 letters, digits, spaces or ._:@-, starting with a letter or digit");
  }
  if (input.scopes.length === 0) throw new LonghaulError("invalid_argument", `scopes: at least one of ${SCOPES.join(", ")}`);
  const scopes = new Set<Scope>();
  for (const s of input.scopes) {
    if (!SCOPES.includes(s as Scope)) throw new LonghaulError("invalid_argument", `scopes: '${s}' is not one of ${SCOPES.join(", ")}`);
    if (scopes.has(s as Scope)) throw new LonghaulError("invalid_argument", `scopes: '${s}' is named twice`);
    scopes.add(s as Scope);
  }
  // In the order of SCOPES, so listings read alike.
  return { name: input.name, scopes: SCOPES.filter((s) => scopes.has(s)) };
}

/**
 * Projects, keys, scopes and limits: who a key is, what it may do, and the
 * operator's management of it all. Free of transports: the gRPC adapters
 * (AdminService, KeyService, the public services) call it.
 */
export function createTenancy(store: TenancyStore, settings: TenancySettings, log: Logger) {
  // Keys by their sha-256; a key's answer (null: no such live key) is kept
  // authCacheMs, a failed look-up (Postgres away) not at all, and concurrent
  // first look-ups of one key share one statement.
  const findCaller = async (secret: string): Promise<{ caller: KeyCaller | null }> => {
    const key = secret ? await store.findKey(secret) : undefined;
    return { caller: key ? { project: key.project, scopes: key.scopes, keyId: key.id } : null };
  };
  const cache =
    settings.authCacheMs > 0
      ? new LRUCache<string, { caller: KeyCaller | null }, string>({
          max: 10_000,
          ttl: settings.authCacheMs,
          fetchMethod: (_digest, _stale, { context }) => findCaller(context),
        })
      : undefined;
  const adminDigests = settings.adminKey
    ? [settings.adminKey, settings.previousAdminKey].filter((k): k is string => !!k).map(sha256)
    : [];

  async function withUsage(projects: ProjectRecord[]): Promise<ProjectView[]> {
    const usage = await store.projectUsage(projects.map((p) => p.name));
    return projects.map((p) => ({ ...p, usage: usage.get(p.name) ?? { runsToday: 0, inFlight: 0, queued: 0, throttledToday: 0 } }));
  }

  async function liveProject(name: string): Promise<ProjectRecord> {
    const p = await store.getProject(name);
    if (!p) throw new LonghaulError("not_found", `project ${name} not found`);
    return p;
  }

  async function createKey(
    project: string,
    input: { name: string; scopes: readonly string[] },
    grantable: readonly Scope[],
    actor: string,
  ): Promise<CreatedKey> {
    const { name, scopes } = checkKeyInput(input);
    const beyond = scopes.filter((s) => !grantable.includes(s));
    if (beyond.length) {
      throw new LonghaulError("permission_denied", `a key cannot grant scopes it lacks: ${beyond.map((s) => `'${s}'`).join(", ")}`);
    }
    const secret = newKeySecret();
    const key = await store.createKey(
      project,
      { secret, name, scopes, prefix: keyPrefix(secret) },
      { actor, action: "key.create", project, detail: { name, scopes } },
    );
    if (!key) throw new LonghaulError("not_found", `project ${project} not found`);
    log.info({ project, key_id: key.id, scopes }, "key created");
    return { ...key, secret };
  }

  /** Counts a refusal over a limit in the project's usage; a failure to count is logged, never the caller's. */
  async function noteThrottled(project: string): Promise<void> {
    await store.countThrottled(project).catch((err: unknown) => log.warn({ err, project }, "could not count a refusal over a limit"));
  }

  return {
    /**
     * The caller behind a project key; `unauthenticated` for an unknown,
     * revoked or malformed one. Answers are kept `authCacheMs`.
     */
    async authenticate(secret: string): Promise<KeyCaller> {
      const digest = sha256(secret).toString("hex");
      const answer = cache ? await cache.fetch(digest, { context: secret }) : await findCaller(secret);
      const caller = answer?.caller ?? null;
      if (!caller) throw new LonghaulError("unauthenticated", "missing, unknown or revoked API key");
      return caller;
    },

    requireScope,

    /** Throws `unauthenticated` unless `secret` is the operator key (compared in constant time). */
    checkAdmin(secret: string): { fingerprint: string } {
      if (adminDigests.length === 0) throw new LonghaulError("unauthenticated", "the admin API is off: LONGHAUL_ADMIN_KEY is not set");
      const given = sha256(secret);
      // Every candidate is compared, so the time says nothing about which matched.
      const match = adminDigests.map((d) => (timingSafeEqual(given, d) ? d : undefined)).find((d) => d !== undefined);
      if (!match) throw new LonghaulError("unauthenticated", "not the operator key");
      return { fingerprint: match.toString("hex").slice(0, 12) };
    },

    async createProject(name: string, actor: string): Promise<ProjectView> {
      checkProjectName(name);
      const p = await store.createProject(name, settings.defaultLimits, { actor, action: "project.create", project: name });
      if (!p) throw new LonghaulError("already_exists", `project ${name} exists (or existed: a deleted project's name is not reused)`);
      log.info({ project: name }, "project created");
      return (await withUsage([p]))[0]!;
    },

    async getProject(name: string): Promise<ProjectView> {
      return (await withUsage([await liveProject(name)]))[0]!;
    },

    async listProjects(): Promise<ProjectView[]> {
      return withUsage(await store.listProjects());
    },

    async updateLimits(name: string, limits: Partial<ProjectLimits>, actor: string): Promise<ProjectView> {
      checkLimits(limits);
      const p = await store.updateLimits(name, limits, { actor, action: "project.limits", project: name, detail: apiLimits(limits) });
      if (!p) throw new LonghaulError("not_found", `project ${name} not found`);
      log.info({ project: name, limits: p.limits }, "project limits changed");
      return (await withUsage([p]))[0]!;
    },

    async deleteProject(name: string, actor: string): Promise<void> {
      if (!(await store.deleteProject(name, { actor, action: "project.delete", project: name }))) throw new LonghaulError("not_found", `project ${name} not found`);
      log.info({ project: name }, "project deleted; its keys are revoked");
    },

    /** The operator makes a key of any live project, with any scopes. */
    createKey: (project: string, input: { name: string; scopes: readonly string[] }, actor: string) => createKey(project, input, SCOPES, actor),

    /** A project admin makes a key of its own project, with no scope it lacks. */
    createOwnKey: (caller: KeyCaller, input: { name: string; scopes: readonly string[] }) => {
      requireScope(caller, "admin", "managing keys");
      return createKey(caller.project, input, caller.scopes, `key:${caller.keyId}`);
    },

    async listKeys(project: string): Promise<KeyRecord[]> {
      await liveProject(project);
      return store.listKeys(project);
    },

    async listOwnKeys(caller: KeyCaller): Promise<KeyRecord[]> {
      requireScope(caller, "admin", "managing keys");
      return store.listKeys(caller.project);
    },

    /** Revokes a key of any project (the operator) or of the caller's own (a project admin): 404 otherwise. */
    async revokeKey(id: string, by: { actor: string } | KeyCaller): Promise<void> {
      const caller = "keyId" in by ? by : undefined;
      if (caller) requireScope(caller, "admin", "managing keys");
      if (!UUID.test(id)) throw new LonghaulError("not_found", `key ${id} not found`);
      const actor = caller ? `key:${caller.keyId}` : (by as { actor: string }).actor;
      const key = await store.revokeKey(id.toLowerCase(), caller?.project, { actor, action: "key.revoke", project: caller?.project ?? null });
      if (!key) throw new LonghaulError("not_found", `key ${id} not found`);
      // This copy forgets it at once; others within authCacheMs.
      cache?.clear();
      log.info({ project: key.project, key_id: key.id }, "key revoked");
    },

    noteThrottled,

    /** Admin actions newest first, 1..200 a page (default 50), of one project or all. */
    async listAudit(q: { project: string; limit: number; cursor: string }): Promise<{ entries: AuditRecord[]; nextCursor: string }> {
      if (q.project && !/^[a-z][a-z0-9-]{0,62}$/.test(q.project)) throw new LonghaulError("invalid_argument", "project: not a project name");
      if (!Number.isInteger(q.limit) || q.limit < 0 || q.limit > 200) throw new LonghaulError("invalid_argument", "limit: from 1 to 200");
      const limit = q.limit || 50;
      let beforeId: string | undefined;
      if (q.cursor) {
        beforeId = Buffer.from(q.cursor, "base64url").toString();
        if (!/^[1-9][0-9]{0,18}$/.test(beforeId)) throw new LonghaulError("invalid_argument", "cursor: not a cursor returned by this API");
      }
      const rows = await store.listAudit({ project: q.project, limit: limit + 1, beforeId });
      const entries = rows.slice(0, limit);
      const last = entries.at(-1);
      return { entries, nextCursor: rows.length > limit && last ? Buffer.from(last.id).toString("base64url") : "" };
    },

    /**
     * Holds a watch stream slot of the project while `run` runs, when the
     * project limits its watch streams: a row per stream, renewed while open.
     */
    async withWatchSlot<T>(project: string, run: () => Promise<T>): Promise<T> {
      const p = await store.getProject(project);
      const max = p?.limits.maxWatchStreams ?? 0;
      if (max === 0) return run();
      const id = randomUUID();
      try {
        await store.openWatchStream(project, id, max, WATCH_STREAM_TTL_SECONDS);
      } catch (err) {
        if (err instanceof LonghaulError && err.code === "resource_exhausted") await noteThrottled(project);
        throw err;
      }
      const renew = setInterval(() => {
        store.renewWatchStream(id, WATCH_STREAM_TTL_SECONDS).catch((err: unknown) => log.warn({ err }, "could not renew a watch stream slot"));
      }, (WATCH_STREAM_TTL_SECONDS * 1000) / 3);
      try {
        return await run();
      } finally {
        clearInterval(renew);
        await store.closeWatchStream(id).catch((err: unknown) => log.warn({ err }, "could not close a watch stream slot; it expires"));
      }
    },
  };
}

export type Tenancy = ReturnType<typeof createTenancy>;

/** Limits under the API's names, for the audit log. */
function apiLimits(l: Partial<ProjectLimits>): Record<string, number> {
  const out: Record<string, number> = {};
  if (l.submitsPerSecond !== undefined) out.submits_per_second = l.submitsPerSecond;
  if (l.burst !== undefined) out.burst = l.burst;
  if (l.maxInFlight !== undefined) out.max_in_flight = l.maxInFlight;
  if (l.maxQueued !== undefined) out.max_queued = l.maxQueued;
  if (l.maxWatchStreams !== undefined) out.max_watch_streams = l.maxWatchStreams;
  return out;
}

/** Parses LONGHAUL_DEFAULT_LIMITS (JSON of the API's limit names); a clear error for a bad one. */
export function parseDefaultLimits(raw: string): ProjectLimits {
  if (raw.trim() === "") return { ...UNLIMITED };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error("LONGHAUL_DEFAULT_LIMITS: not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("LONGHAUL_DEFAULT_LIMITS: not a JSON object");
  const o = parsed as Record<string, unknown>;
  const names: Record<string, keyof ProjectLimits> = {
    submits_per_second: "submitsPerSecond",
    burst: "burst",
    max_in_flight: "maxInFlight",
    max_queued: "maxQueued",
    max_watch_streams: "maxWatchStreams",
  };
  const limits: ProjectLimits = { ...UNLIMITED };
  for (const [k, v] of Object.entries(o)) {
    const key = names[k];
    if (!key) throw new Error(`LONGHAUL_DEFAULT_LIMITS: unknown limit '${k}'`);
    if (typeof v !== "number") throw new Error(`LONGHAUL_DEFAULT_LIMITS: ${k} must be a number`);
    limits[key] = v;
  }
  try {
    return checkLimits(limits);
  } catch (err) {
    throw new Error(`LONGHAUL_DEFAULT_LIMITS: ${(err as Error).message}`);
  }
}
