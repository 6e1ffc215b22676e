import { createHash } from "node:crypto";
import { sql, type Kysely } from "kysely";
import type { AppSettings } from "../../core/model.js";
import type { SchedulerDb } from "./schema.js";

export interface StoredApp extends AppSettings {
  createdAt: Date;
  updatedAt: Date;
}

function toApp(row: SchedulerDb["apps"] extends infer _ ? Record<string, unknown> : never): StoredApp {
  return {
    name: row.name as string,
    url: row.url as string,
    timeoutSeconds: row.timeout_seconds as number,
    maxConcurrency: row.max_concurrency as number,
    maxAttempts: row.max_attempts as number,
    initialBackoffSeconds: row.initial_backoff_seconds as number,
    maxBackoffSeconds: row.max_backoff_seconds as number,
    idempotent: row.idempotent as boolean,
    queueTtlSeconds: row.queue_ttl_seconds as number,
    paused: row.paused as boolean,
    createdAt: row.created_at as Date,
    updatedAt: row.updated_at as Date,
  };
}

/** Creates or replaces an app; `created` tells which. */
export async function upsertApp(db: Kysely<SchedulerDb>, project: string, app: AppSettings): Promise<{ app: StoredApp; created: boolean }> {
  const values = {
    url: app.url,
    timeout_seconds: app.timeoutSeconds,
    max_concurrency: app.maxConcurrency,
    max_attempts: app.maxAttempts,
    initial_backoff_seconds: app.initialBackoffSeconds,
    max_backoff_seconds: app.maxBackoffSeconds,
    idempotent: app.idempotent,
    queue_ttl_seconds: app.queueTtlSeconds,
  };
  const row = await db
    .insertInto("apps")
    .values({ project_id: project, name: app.name, ...values })
    .onConflict((oc) => oc.columns(["project_id", "name"]).doUpdateSet({ ...values, updated_at: sql<Date>`now()` as never }))
    .returningAll()
    // xmax = 0 only for a freshly inserted row.
    .returning(sql<boolean>`(xmax = 0)`.as("inserted"))
    .executeTakeFirstOrThrow();
  return { app: toApp(row), created: row.inserted };
}

/** Holds (`paused`) or releases an app's queue; undefined when there is no such app. */
export async function setAppPaused(db: Kysely<SchedulerDb>, project: string, name: string, paused: boolean): Promise<StoredApp | undefined> {
  const row = await db
    .updateTable("apps")
    .set({ paused, updated_at: sql<Date>`now()` as never })
    .where("project_id", "=", project)
    .where("name", "=", name)
    .returningAll()
    .executeTakeFirst();
  return row ? toApp(row) : undefined;
}

export async function getApp(db: Kysely<SchedulerDb>, project: string, name: string): Promise<StoredApp | undefined> {
  const row = await db.selectFrom("apps").selectAll().where("project_id", "=", project).where("name", "=", name).executeTakeFirst();
  return row ? toApp(row) : undefined;
}

export async function listApps(db: Kysely<SchedulerDb>, project: string): Promise<StoredApp[]> {
  const rows = await db.selectFrom("apps").selectAll().where("project_id", "=", project).orderBy("name").execute();
  return rows.map(toApp);
}

export async function deleteApp(db: Kysely<SchedulerDb>, project: string, name: string): Promise<boolean> {
  const r = await db.deleteFrom("apps").where("project_id", "=", project).where("name", "=", name).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/** API keys are stored as their SHA-256, never in clear. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** Ensures a project exists and owns `key` (idempotent; used for the dev project at start). */
export async function ensureProjectKey(db: Kysely<SchedulerDb>, project: string, key: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.insertInto("projects").values({ id: project }).onConflict((oc) => oc.column("id").doNothing()).execute();
    await trx
      .insertInto("api_keys")
      .values({ key_hash: hashApiKey(key), project_id: project })
      .onConflict((oc) => oc.column("key_hash").doUpdateSet({ project_id: project }))
      .execute();
  });
}

/** The project of a live key (not revoked, of a project not deleted). */
export async function projectOfKey(db: Kysely<SchedulerDb>, key: string): Promise<string | undefined> {
  const row = await db
    .selectFrom("api_keys as k")
    .innerJoin("projects as p", "p.id", "k.project_id")
    .select("k.project_id")
    .where("k.key_hash", "=", hashApiKey(key))
    .where("k.revoked_at", "is", null)
    .where("p.deleted_at", "is", null)
    .executeTakeFirst();
  return row?.project_id;
}
