import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { createDb, migrate } from "@longhaul/shared/db";
import { sql, type Kysely } from "kysely";
import { createTestDatabase } from "../../../../../tests/helpers/isolation.js";
import { idPrefixRange, normaliseApp } from "../../core/validation.js";
import type { NewRun, SchedulerStore } from "../../core/ports.js";
import { ensureProjectKey } from "./app-store.js";
import { schedulerMigrationSet } from "./migrations.js";
import { createPgStore } from "./pg-store.js";
import { createSubmitSettingsCache, readSubmitSettings } from "./submit-settings.js";
import type { SchedulerDb } from "./schema.js";

/** Listing filters against a real Postgres: labels, id prefixes, time ranges, status codes. */

const log = createLogger("test", "silent");
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Kysely<SchedulerDb>;
let store: SchedulerStore;
const app = normaliseApp({ name: "search", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });

function newRun(patch: Partial<NewRun> = {}): NewRun {
  return {
    project: "p1",
    app,
    mode: "async",
    method: "POST",
    path: "/x",
    query: "",
    headers: [],
    body: Buffer.from("{}"),
    webhookUrl: null,
    timeoutSeconds: 60,
    priority: 0,
    idempotencyKey: null,
    requestHash: "h",
    notBefore: null,
    expiresAt: null,
    retryOf: null,
    traceparent: "",
    tracestate: "",
    labels: {},
    maxQueuedPerApp: 1000,
    idempotencyTtlSeconds: 3600,
    ...patch,
  };
}

const ids = (runs: { id: string }[]) => runs.map((r) => r.id);

beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb<SchedulerDb>({ url: database.url, log });
  await migrate(db, schedulerMigrationSet, log);
  await ensureProjectKey(db, "p1", "key-one-0123456789");
  await ensureProjectKey(db, "p2", "key-two-0123456789");
  store = createPgStore(db, createSubmitSettingsCache((p, name) => readSubmitSettings(db, p, name), { ttlMs: 60_000 }));
  await store.upsertApp("p1", app);
  await store.upsertApp("p2", app);
});

afterAll(async () => {
  await db?.destroy();
  await database?.drop();
});

describe("run search", () => {
  it("stores labels and finds runs carrying every label asked for, in the caller's project only", async () => {
    const ml = (await store.insertRun(newRun({ labels: { team: "ml", job: "42" } }))).runId;
    const ml2 = (await store.insertRun(newRun({ labels: { team: "ml", job: "43" } }))).runId;
    const cv = (await store.insertRun(newRun({ labels: { team: "cv" } }))).runId;
    await store.insertRun(newRun());
    const other = (await store.insertRun(newRun({ project: "p2", labels: { team: "ml" } }))).runId;

    expect((await store.findRun("p1", ml))?.labels).toEqual({ team: "ml", job: "42" });
    expect((await store.findRun("p1", cv))?.labels).toEqual({ team: "cv" });
    const team = await store.listRuns({ project: "p1", labels: { team: "ml" }, limit: 10 });
    expect(ids(team).sort()).toEqual([ml, ml2].sort());
    expect(ids(await store.listRuns({ project: "p1", labels: { team: "ml", job: "43" }, limit: 10 }))).toEqual([ml2]);
    expect(await store.listRuns({ project: "p1", labels: { team: "nlp" }, limit: 10 })).toEqual([]);
    expect(ids(await store.listRuns({ project: "p2", labels: { team: "ml" }, limit: 10 }))).toEqual([other]);
  });

  it("finds a run by a prefix of its id, and lists every run sharing a prefix", async () => {
    // Two runs whose ids share their first 8 digits: neither is guessed.
    const twins = ["5eed0001-aaaa-4000-8000-000000000001", "5eed0001-bbbb-4000-8000-000000000002"];
    for (const id of twins) {
      await store.insertRun(newRun());
      await db.updateTable("runs").set({ id }).where("id", "=", sql<string>`(select id from runs order by created_at desc limit 1)`).execute();
    }
    const both = await store.listRuns({ project: "p1", idRange: idPrefixRange("5eed0001"), limit: 10 });
    expect(ids(both).sort()).toEqual(twins);
    expect(ids(await store.listRuns({ project: "p1", idRange: idPrefixRange("5eed0001-bb"), limit: 10 }))).toEqual([twins[1]]);
    expect(ids(await store.listRuns({ project: "p1", idRange: idPrefixRange(twins[0]!), limit: 10 }))).toEqual([twins[0]]);
    expect(await store.listRuns({ project: "p2", idRange: idPrefixRange("5eed0001"), limit: 10 })).toEqual([]);
  });

  it("filters by creation time range and by the app's status code", async () => {
    const old = (await store.insertRun(newRun({ labels: { era: "old" } }))).runId;
    await db.updateTable("runs").set({ created_at: new Date("2026-01-01T00:00:00Z") }).where("id", "=", old).execute();
    const codes: Record<number, string> = {};
    for (const code of [200, 404, 502, 503]) {
      const id = (await store.insertRun(newRun({ labels: { era: "new" } }))).runId;
      await db.updateTable("runs").set({ status: code === 200 ? "succeeded" : "failed", status_code: code }).where("id", "=", id).execute();
      codes[code] = id;
    }
    const before = await store.listRuns({ project: "p1", createdBefore: new Date("2026-01-02T00:00:00Z"), limit: 50 });
    expect(ids(before)).toEqual([old]);
    const between = await store.listRuns({
      project: "p1",
      createdAfter: new Date("2025-12-31T00:00:00Z"),
      createdBefore: new Date("2026-01-01T00:00:01Z"),
      limit: 50,
    });
    expect(ids(between)).toEqual([old]);
    expect(ids(await store.listRuns({ project: "p1", statusCode: { min: 502, max: 502 }, limit: 50 }))).toEqual([codes[502]]);
    const fivexx = await store.listRuns({ project: "p1", statusCode: { min: 500, max: 599 }, labels: { era: "new" }, limit: 50 });
    expect(ids(fivexx).sort()).toEqual([codes[502], codes[503]].sort());
  });
});
