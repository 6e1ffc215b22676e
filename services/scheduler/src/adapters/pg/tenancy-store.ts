import { sql, type Kysely, type Transaction } from "kysely";
import { LonghaulError } from "@longhaul/shared/errors";
import {
  drawToken,
  type AuditInput,
  type AuditRecord,
  type KeyRecord,
  type ProjectLimits,
  type ProjectRecord,
  type ProjectUsage,
  type Scope,
} from "../../core/tenancy-model.js";
import { hashApiKey } from "./app-store.js";
import type { SchedulerDb } from "./schema.js";

type Db = Kysely<SchedulerDb> | Transaction<SchedulerDb>;

const PROJECT_COLUMNS = [
  "id",
  "created_at",
  "submits_per_second",
  "burst",
  "max_in_flight",
  "max_queued",
  "max_watch_streams",
] as const;

type ProjectRow = {
  id: string;
  created_at: Date;
  submits_per_second: number;
  burst: number;
  max_in_flight: number;
  max_queued: number;
  max_watch_streams: number;
};

function limitsOf(r: ProjectRow): ProjectLimits {
  return {
    submitsPerSecond: Number(r.submits_per_second),
    burst: r.burst,
    maxInFlight: r.max_in_flight,
    maxQueued: r.max_queued,
    maxWatchStreams: r.max_watch_streams,
  };
}

function projectOf(r: ProjectRow): ProjectRecord {
  return { name: r.id, createdAt: r.created_at, limits: limitsOf(r) };
}

const limitColumns = (l: Partial<ProjectLimits>) => ({
  ...(l.submitsPerSecond !== undefined ? { submits_per_second: l.submitsPerSecond } : {}),
  ...(l.burst !== undefined ? { burst: l.burst } : {}),
  ...(l.maxInFlight !== undefined ? { max_in_flight: l.maxInFlight } : {}),
  ...(l.maxQueued !== undefined ? { max_queued: l.maxQueued } : {}),
  ...(l.maxWatchStreams !== undefined ? { max_watch_streams: l.maxWatchStreams } : {}),
});

/**
 * A new project with `limits`; `undefined` when the name is taken, by a live
 * project or a deleted one (a name is never reused: the old project's runs
 * would show through to the new one's keys).
 */
export async function createProject(db: Kysely<SchedulerDb>, name: string, limits: ProjectLimits, audit: AuditInput): Promise<ProjectRecord | undefined> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto("projects")
      .values({ id: name, ...limitColumns(limits) })
      .onConflict((oc) => oc.column("id").doNothing())
      .returning(PROJECT_COLUMNS)
      .executeTakeFirst();
    if (!row) return undefined;
    await recordAudit(trx, audit);
    return projectOf(row);
  });
}

/** Records an admin action; called inside the transaction of the change. */
export async function recordAudit(trx: Transaction<SchedulerDb>, a: AuditInput): Promise<void> {
  await trx
    .insertInto("admin_audit")
    .values({ actor: a.actor, action: a.action, project_id: a.project, target: a.target ?? null, detail: JSON.stringify(a.detail ?? {}) })
    .execute();
}

/** Admin actions newest first, of one project or all, before `beforeId`. */
export async function listAudit(db: Db, q: { project: string; limit: number; beforeId: string | undefined }): Promise<AuditRecord[]> {
  let query = db.selectFrom("admin_audit").select(["id", "at", "actor", "action", "project_id", "target", "detail"]);
  if (q.project) query = query.where("project_id", "=", q.project);
  if (q.beforeId) query = query.where("id", "<", q.beforeId as never);
  const rows = await query.orderBy("id", "desc").limit(q.limit).execute();
  return rows.map((r) => ({ id: String(r.id), at: r.at, actor: r.actor, action: r.action, project: r.project_id, target: r.target, detail: r.detail }));
}

export async function getProject(db: Db, name: string): Promise<ProjectRecord | undefined> {
  const row = await db.selectFrom("projects").select(PROJECT_COLUMNS).where("id", "=", name).where("deleted_at", "is", null).executeTakeFirst();
  return row ? projectOf(row) : undefined;
}

export async function listProjects(db: Db): Promise<ProjectRecord[]> {
  const rows = await db.selectFrom("projects").select(PROJECT_COLUMNS).where("deleted_at", "is", null).orderBy("id").execute();
  return rows.map(projectOf);
}

/** Today's usage (UTC) of each named project, in one statement. */
export async function projectUsage(db: Db, names: readonly string[]): Promise<Map<string, ProjectUsage>> {
  if (names.length === 0) return new Map();
  const rows = await sql<{ project: string; runs_today: string; in_flight: number; queued: number; throttled: string | null }>`
    select p.project,
      (select count(*) from runs r where r.project_id = p.project
         and r.created_at >= (date_trunc('day', now() at time zone 'utc') at time zone 'utc')) as runs_today,
      (select count(*)::int from runs r where r.project_id = p.project and r.status in ('dispatched', 'running')) as in_flight,
      (select count(*)::int from runs r where r.project_id = p.project and r.status = 'queued') as queued,
      (select u.throttled from project_usage u where u.project_id = p.project and u.day = (now() at time zone 'utc')::date) as throttled
    from unnest(${names as string[]}::text[]) as p(project)`.execute(db);
  return new Map(
    rows.rows.map((r) => [
      r.project,
      { runsToday: Number(r.runs_today), inFlight: r.in_flight, queued: r.queued, throttledToday: Number(r.throttled ?? 0) },
    ]),
  );
}

/** Changes the given limits of a live project; undefined when there is none. */
export async function updateLimits(db: Kysely<SchedulerDb>, name: string, limits: Partial<ProjectLimits>, audit: AuditInput): Promise<ProjectRecord | undefined> {
  const set = limitColumns(limits);
  if (Object.keys(set).length === 0) return getProject(db, name);
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .updateTable("projects")
      .set(set)
      .where("id", "=", name)
      .where("deleted_at", "is", null)
      .returning(PROJECT_COLUMNS)
      .executeTakeFirst();
    if (!row) return undefined;
    await recordAudit(trx, audit);
    return projectOf(row);
  });
}

/** Marks a live project deleted and revokes its keys, in one transaction; false when there is none. */
export async function deleteProject(db: Kysely<SchedulerDb>, name: string, audit: AuditInput): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .updateTable("projects")
      .set({ deleted_at: sql<Date>`now()` as never })
      .where("id", "=", name)
      .where("deleted_at", "is", null)
      .returning("id")
      .executeTakeFirst();
    if (!row) return false;
    await trx.updateTable("api_keys").set({ revoked_at: sql<Date>`now()` as never }).where("project_id", "=", name).where("revoked_at", "is", null).execute();
    await recordAudit(trx, audit);
    return true;
  });
}

type KeyRow = { id: string; project_id: string; name: string; scopes: string[]; prefix: string; created_at: Date; last_used_at: Date | null };

function keyOf(r: KeyRow): KeyRecord {
  return {
    id: r.id,
    project: r.project_id,
    name: r.name,
    scopes: r.scopes as Scope[],
    prefix: r.prefix,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
  };
}

const KEY_COLUMNS = ["id", "project_id", "name", "scopes", "prefix", "created_at", "last_used_at"] as const;

/** Stores a key (by its hash) for a live project; undefined when the project is not. */
export async function createKey(
  db: Kysely<SchedulerDb>,
  project: string,
  key: { secret: string; name: string; scopes: Scope[]; prefix: string },
  audit: AuditInput,
): Promise<KeyRecord | undefined> {
  return db.transaction().execute(async (trx) => {
    const live = await trx.selectFrom("projects").select("id").where("id", "=", project).where("deleted_at", "is", null).forShare().executeTakeFirst();
    if (!live) return undefined;
    const row = await trx
      .insertInto("api_keys")
      .values({ key_hash: hashApiKey(key.secret), project_id: project, name: key.name, scopes: key.scopes, prefix: key.prefix })
      .returning(KEY_COLUMNS)
      .executeTakeFirstOrThrow();
    await recordAudit(trx, { ...audit, target: row.id });
    return keyOf(row);
  });
}

/** A project's keys not revoked, oldest first. */
export async function listKeys(db: Db, project: string): Promise<KeyRecord[]> {
  const rows = await db
    .selectFrom("api_keys")
    .select(KEY_COLUMNS)
    .where("project_id", "=", project)
    .where("revoked_at", "is", null)
    .orderBy("created_at")
    .orderBy("id")
    .execute();
  return rows.map(keyOf);
}

/** Revokes a key (of `project`, when given); the revoked key, or undefined when there is none to revoke. */
export async function revokeKey(db: Kysely<SchedulerDb>, id: string, project: string | undefined, audit: AuditInput): Promise<KeyRecord | undefined> {
  return db.transaction().execute(async (trx) => {
    let q = trx
      .updateTable("api_keys")
      .set({ revoked_at: sql<Date>`now()` as never })
      .where("id", "=", id)
      .where("revoked_at", "is", null);
    if (project !== undefined) q = q.where("project_id", "=", project);
    const row = await q.returning(KEY_COLUMNS).executeTakeFirst();
    if (!row) return undefined;
    await recordAudit(trx, { ...audit, project: row.project_id, target: row.id, detail: { name: row.name } });
    return keyOf(row);
  });
}

/** How often a key's `last_used_at` is written at most: a read path must not write per call. */
const LAST_USED_RESOLUTION_SECONDS = 60;

/**
 * The live key with this secret, of a live project; notes its use (at most
 * once a minute). Undefined for an unknown or revoked key.
 */
export async function findKey(db: Db, secret: string): Promise<KeyRecord | undefined> {
  const row = await db
    .selectFrom("api_keys as k")
    .innerJoin("projects as p", "p.id", "k.project_id")
    .select(["k.id", "k.project_id", "k.name", "k.scopes", "k.prefix", "k.created_at", "k.last_used_at"])
    .where("k.key_hash", "=", hashApiKey(secret))
    .where("k.revoked_at", "is", null)
    .where("p.deleted_at", "is", null)
    .executeTakeFirst();
  if (!row) return undefined;
  if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > LAST_USED_RESOLUTION_SECONDS * 1000) {
    await db.updateTable("api_keys").set({ last_used_at: sql<Date>`now()` as never }).where("id", "=", row.id).execute();
  }
  return keyOf(row);
}

/** Counts one refusal over a limit in the project's usage of today (UTC). */
export async function countThrottled(db: Db, project: string): Promise<void> {
  await sql`
    insert into project_usage (project_id, day, throttled)
    values (${project}, (now() at time zone 'utc')::date, 1)
    on conflict (project_id, day) do update set throttled = project_usage.throttled + 1`.execute(db);
}

/**
 * Admits one submit of `project` inside the submit's transaction: draws from
 * the project's token bucket and checks its queue, under a lock on the
 * project's row (taken only when the project has a limit, so that copies of
 * the scheduler agree and unlimited projects pay one plain read). Returns how
 * many more runs the project may have in flight (Infinity: no limit); throws
 * `resource_exhausted` with the quota's state when over a limit, and
 * `not_found` for a deleted project. Locks the project row before any app row
 * (dispatchQueued does likewise), so the two never deadlock.
 */
export async function admitSubmit(trx: Transaction<SchedulerDb>, project: string): Promise<number> {
  const cols = [...PROJECT_COLUMNS, "deleted_at", "bucket_tokens", "bucket_at", sql<Date>`now()`.as("now")] as const;
  let row = await trx.selectFrom("projects").select(cols).where("id", "=", project).executeTakeFirst();
  if (!row || row.deleted_at) throw new LonghaulError("not_found", `project ${project} not found`);
  let limits = limitsOf(row);
  if (limits.submitsPerSecond === 0 && limits.maxQueued === 0 && limits.maxInFlight === 0) return Number.POSITIVE_INFINITY;
  row = await trx.selectFrom("projects").select(cols).where("id", "=", project).forUpdate().executeTakeFirstOrThrow();
  limits = limitsOf(row);
  if (limits.submitsPerSecond > 0) {
    const draw = drawToken({ tokens: row.bucket_tokens, at: row.bucket_at }, limits, row.now);
    if (!draw.ok) {
      const reset = Math.max(1, Math.ceil(draw.retryAfterSeconds));
      throw new LonghaulError("resource_exhausted", `project ${project} is over its limit of ${limits.submitsPerSecond} submits per second (burst ${draw.capacity})`, {
        retryAfterSeconds: reset,
        quota: { limit: "submits_per_second", quota: draw.capacity, windowSeconds: Math.max(1, Math.ceil(draw.capacity / limits.submitsPerSecond)), remaining: 0, resetSeconds: reset },
      });
    }
    await trx.updateTable("projects").set({ bucket_tokens: draw.tokens, bucket_at: row.now }).where("id", "=", project).execute();
  }
  if (limits.maxQueued > 0) {
    const { n } = await trx
      .selectFrom("runs")
      .select(sql<number>`count(*)::int`.as("n"))
      .where("project_id", "=", project)
      .where("status", "=", "queued")
      .executeTakeFirstOrThrow();
    // Only a run that would wait counts against the queue; one that starts at once never does,
    // but whether it starts is known later: refuse only when the queue is full already.
    if (n >= limits.maxQueued) {
      throw new LonghaulError("resource_exhausted", `project ${project} has ${n} runs queued, its limit (max_queued ${limits.maxQueued})`, {
        retryAfterSeconds: 5,
        quota: { limit: "max_queued", quota: limits.maxQueued, remaining: 0, resetSeconds: 5 },
      });
    }
  }
  return projectRoomLocked(trx, project, limits.maxInFlight);
}

async function projectRoomLocked(trx: Transaction<SchedulerDb>, project: string, maxInFlight: number): Promise<number> {
  if (maxInFlight === 0) return Number.POSITIVE_INFINITY;
  const { n } = await trx
    .selectFrom("runs")
    .select(sql<number>`count(*)::int`.as("n"))
    .where("project_id", "=", project)
    .where("status", "in", ["dispatched", "running"])
    .executeTakeFirstOrThrow();
  return maxInFlight - n;
}

/**
 * How many more runs `project` may start now under its `max_in_flight`
 * (Infinity: no limit), under a lock on its row when it has one. Taken
 * before any app row lock, as admitSubmit does.
 */
export async function projectRoom(trx: Transaction<SchedulerDb>, project: string): Promise<number> {
  const row = await trx.selectFrom("projects").select("max_in_flight").where("id", "=", project).executeTakeFirst();
  if (!row || row.max_in_flight === 0) return Number.POSITIVE_INFINITY;
  const locked = await trx.selectFrom("projects").select("max_in_flight").where("id", "=", project).forUpdate().executeTakeFirstOrThrow();
  return projectRoomLocked(trx, project, locked.max_in_flight);
}

/**
 * Opens a watch stream of `project` unless `max` (> 0) are open already
 * (rows not expired), under a lock on the project's row so copies agree.
 * Returns the number open before, or throws `resource_exhausted`.
 */
export async function openWatchStream(db: Kysely<SchedulerDb>, project: string, id: string, max: number, ttlSeconds: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.selectFrom("projects").select("id").where("id", "=", project).forUpdate().execute();
    await trx.deleteFrom("watch_streams").where("project_id", "=", project).where("expires_at", "<", sql<Date>`now()`).execute();
    const { n } = await trx
      .selectFrom("watch_streams")
      .select(sql<number>`count(*)::int`.as("n"))
      .where("project_id", "=", project)
      .executeTakeFirstOrThrow();
    if (n >= max) {
      throw new LonghaulError("resource_exhausted", `project ${project} has ${n} watch streams open, its limit (max_watch_streams ${max})`, {
        retryAfterSeconds: 5,
        quota: { limit: "max_watch_streams", quota: max, remaining: 0, resetSeconds: 5 },
      });
    }
    await trx
      .insertInto("watch_streams")
      .values({ id, project_id: project, expires_at: sql<Date>`now() + make_interval(secs => ${ttlSeconds})` as never })
      .execute();
  });
}

export async function renewWatchStream(db: Db, id: string, ttlSeconds: number): Promise<void> {
  await db
    .updateTable("watch_streams")
    .set({ expires_at: sql<Date>`now() + make_interval(secs => ${ttlSeconds})` as never })
    .where("id", "=", id)
    .execute();
}

export async function closeWatchStream(db: Db, id: string): Promise<void> {
  await db.deleteFrom("watch_streams").where("id", "=", id).execute();
}
