import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import { createLogger } from "@longhaul/shared/logger";
import { createDb, migrate, sql } from "@longhaul/shared/db";
import type { Kysely } from "kysely";
import { createTestDatabase } from "../../../../../tests/helpers/isolation.js";
import { normaliseApp } from "../../core/validation.js";
import { decide } from "../../core/retry-policy.js";
import type { EventBus, NewRun, SchedulerStore } from "../../core/ports.js";
import { watchProjectRuns } from "../../core/runs-watch.js";
import { ensureProjectKey } from "./app-store.js";
import { schedulerMigrationSet } from "./migrations.js";
import { createPgStore } from "./pg-store.js";
import type { SchedulerDb } from "./schema.js";
import { createSubmitSettingsCache, readSubmitSettings, type SubmitSettingsCache } from "./submit-settings.js";

const log = createLogger("test", "silent");
let database: Awaited<ReturnType<typeof createTestDatabase>>;
// Two pools: two schedulers' views of one database.
let dbA: Kysely<SchedulerDb>;
let dbB: Kysely<SchedulerDb>;
let a: SchedulerStore;
let b: SchedulerStore;

beforeAll(async () => {
  database = await createTestDatabase();
  dbA = createDb<SchedulerDb>({ url: database.url, log });
  dbB = createDb<SchedulerDb>({ url: database.url, log });
  await migrate(dbA, schedulerMigrationSet, log);
  await ensureProjectKey(dbA, "p1", "key-one-0123456789");
  await ensureProjectKey(dbA, "p2", "key-two-0123456789");
  // Each scheduler's submit settings, the notices between them as NATS carries them (settings-notices.ts).
  const settingsA = createSubmitSettingsCache((p, app) => readSubmitSettings(dbA, p, app), { ttlMs: 60_000, announce: (p) => settingsB.forget(p) });
  const settingsB: SubmitSettingsCache = createSubmitSettingsCache((p, app) => readSubmitSettings(dbB, p, app), {
    ttlMs: 60_000,
    announce: (p) => settingsA.forget(p),
  });
  a = createPgStore(dbA, settingsA);
  b = createPgStore(dbB, settingsB);
});

afterAll(async () => {
  await dbA?.destroy();
  await dbB?.destroy();
  await database?.drop();
});

function newRun(app: ReturnType<typeof normaliseApp>, patch: Partial<NewRun> = {}): NewRun {
  return {
    project: "p1",
    app,
    mode: "async",
    method: "POST",
    path: "/x",
    query: "a=1",
    headers: [{ name: "content-type", value: "application/json" }],
    body: Buffer.from('{"n":1}'),
    webhookUrl: null,
    timeoutSeconds: 60,
    priority: 0,
    idempotencyKey: null,
    requestHash: "h1",
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

const ok = { statusCode: 200, headers: [], body: Buffer.from("ok"), bodyTruncated: false, errorCode: "", errorMessage: "" };

describe("pg store", () => {
  it("keys resolve to their project only", async () => {
    expect(await a.projectOfKey("key-one-0123456789")).toBe("p1");
    expect(await a.projectOfKey("nope")).toBeUndefined();
  });

  it("holds a concurrency limit across two schedulers submitting at once", async () => {
    const app = normaliseApp({ name: "limited", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 2, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).insertRun(newRun(app))));
    expect(results.filter((r) => r.dispatch !== null)).toHaveLength(2);
    // Freeing nothing: the queue pass from either side dispatches nothing more.
    const more = await Promise.all([a.dispatchQueued("p1", "limited", 10), b.dispatchQueued("p1", "limited", 10)]);
    expect(more.flat()).toHaveLength(0);
    // One finishes: exactly one more may start, whichever scheduler looks.
    const first = results.find((r) => r.dispatch)!.dispatch!;
    expect(await a.claimRun(first.runId, 1, "inv-1", 30)).toBeDefined();
    const app2 = (await a.getApp("p1", "limited"))!;
    await a.endAttempt(first.runId, 1, "inv-1", ok, (run) => decide(app2, run.attempt, run.max_attempts, { statusCode: 200, errorCode: "", errorMessage: "", retryAfterSeconds: 0 }));
    const next = await Promise.all([a.dispatchQueued("p1", "limited", 10), b.dispatchQueued("p1", "limited", 10)]);
    expect(next.flat()).toHaveLength(1);
  });

  it("a change of an app or a project's limits on one scheduler reaches the other's next submit", async () => {
    const app = normaliseApp({ name: "settings", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const submit = (store: SchedulerStore) => store.submitRun("p1", "settings", (found) => newRun(found));
    // b reads the settings once and keeps them: its submits are one statement.
    expect((await submit(b)).dispatch).not.toBeNull();
    await a.setAppPaused("p1", "settings", true);
    expect((await submit(b)).dispatch).toBeNull();
    await a.setAppPaused("p1", "settings", false);
    expect((await submit(b)).dispatch).not.toBeNull();
    await a.deleteApp("p1", "settings");
    await expect(submit(b)).rejects.toThrow(/app settings not found/);

    // Without a notice (lost), a copy is behind for the cache's lifetime at most.
    await a.upsertApp("p1", app);
    const deaf = createPgStore(dbB, createSubmitSettingsCache((p, name) => readSubmitSettings(dbB, p, name), { ttlMs: 300 }));
    expect((await submit(deaf)).dispatch).not.toBeNull();
    await a.setAppPaused("p1", "settings", true);
    await new Promise((r) => setTimeout(r, 400));
    expect((await submit(deaf)).dispatch).toBeNull();
    await a.deleteApp("p1", "settings");
  });

  it("dispatches the queue by priority, FIFO within a priority", async () => {
    const app = normaliseApp({ name: "prio", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 1, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const blocker = await a.insertRun(newRun(app));
    expect(blocker.dispatch).not.toBeNull();
    const low = await a.insertRun(newRun(app, { priority: 0 }));
    const high1 = await a.insertRun(newRun(app, { priority: 5 }));
    const high2 = await a.insertRun(newRun(app, { priority: 5 }));
    await a.cancelRun("p1", blocker.runId);
    expect((await a.dispatchQueued("p1", "prio", 10)).map((d) => d.runId)).toEqual([high1.runId]);
    await a.cancelRun("p1", high1.runId);
    expect((await a.dispatchQueued("p1", "prio", 10)).map((d) => d.runId)).toEqual([high2.runId]);
    await a.cancelRun("p1", high2.runId);
    expect((await a.dispatchQueued("p1", "prio", 10)).map((d) => d.runId)).toEqual([low.runId]);
  });

  it("returns the same run for a repeated Idempotency-Key and refuses another body", async () => {
    const app = normaliseApp({ name: "idem", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const [x, y] = await Promise.all([
      a.insertRun(newRun(app, { idempotencyKey: "k1" })),
      b.insertRun(newRun(app, { idempotencyKey: "k1" })),
    ]);
    expect(x!.runId).toBe(y!.runId);
    expect([x!.existing, y!.existing].sort()).toEqual([false, true]);
    await expect(a.insertRun(newRun(app, { idempotencyKey: "k1", requestHash: "other" }))).rejects.toMatchObject({ code: "unprocessable" });
    // Another project may use the same key for its own run.
    await a.upsertApp("p2", app);
    const other = await a.insertRun(newRun(app, { project: "p2", idempotencyKey: "k1" }));
    expect(other.runId).not.toBe(x!.runId);
  });

  it("a submit sent again with its run id, to either scheduler, makes one run; another project's id is refused", async () => {
    const app = normaliseApp({ name: "chosen", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    await a.upsertApp("p2", app);
    const runId = "0190c0de-0000-7000-8000-00000000c0de";
    const [x, y] = await Promise.all([
      a.submitRun("p1", "chosen", (found) => newRun(found), runId),
      b.submitRun("p1", "chosen", (found) => newRun(found), runId),
    ]);
    expect([x.runId, y.runId]).toEqual([runId, runId]);
    expect([x.existing, y.existing].sort()).toEqual([false, true]);
    // Only the new one is dispatched: a resend never dispatches twice.
    expect([x.dispatch, y.dispatch].filter(Boolean)).toHaveLength(1);
    expect(await a.findRun("p1", runId)).toMatchObject({ id: runId, status: "dispatched" });
    await expect(a.submitRun("p2", "chosen", (found) => newRun(found, { project: "p2" }), runId)).rejects.toMatchObject({ code: "already_exists" });
    // Through the transaction path (an Idempotency-Key) the same holds.
    await expect(a.submitRun("p2", "chosen", (found) => newRun(found, { project: "p2", idempotencyKey: "k-chosen" }), runId)).rejects.toMatchObject({
      code: "already_exists",
    });
  });

  it("ends concurrent successes in shared statements, each run once, and refuses a repeat", async () => {
    const app = normaliseApp({ name: "many", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const ids = await Promise.all(Array.from({ length: 30 }, () => a.insertRun(newRun(app)).then((r) => r.runId)));
    const claimed = await Promise.all(ids.map((id, i) => (i % 2 ? a : b).claimRun(id, 1, `inv-${i % 3}`, 30)));
    expect(claimed.every(Boolean)).toBe(true);
    // Each result sent twice at once (a retried CompleteRun): one ends the run, the other is late.
    const ended = await Promise.all(ids.flatMap((id, i) => [0, 1].map(() => a.endSucceeded(id, 1, `inv-${i % 3}`, ok))));
    expect(ended.filter(Boolean)).toHaveLength(30);
    for (const id of ids) {
      expect(await a.findRun("p1", id)).toMatchObject({ status: "succeeded", status_code: 200, owner: null, webhook_state: "none" });
      const [attempt] = await a.findAttempts(id);
      expect(attempt).toMatchObject({ status_code: 200 });
      expect(attempt!.finished_at).toBeInstanceOf(Date);
    }
    // A wrong owner is refused.
    const { runId } = await a.insertRun(newRun(app));
    await a.claimRun(runId, 1, "inv-x", 30);
    expect(await a.endSucceeded(runId, 1, "inv-y", ok)).toBeUndefined();
    expect(await a.endSucceeded(runId, 1, "inv-x", ok)).toMatchObject({ limited: false, run: { status: "succeeded" } });
  });

  it("holds writes of one run each to its bound, so that a burst of them leaves connections free", async () => {
    const app = normaliseApp({ name: "bounded", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const failed = { statusCode: 500, headers: [], body: Buffer.from("no"), bodyTruncated: false, errorCode: "", errorMessage: "" };
    const decideFailed = (run: { attempt: number; max_attempts: number }) =>
      decide(app, run.attempt, run.max_attempts, { statusCode: 500, errorCode: "", errorMessage: "", retryAfterSeconds: 0 });
    /** Ends 12 claimed runs as failed at once through a store bounded to `perRunWrites`; the most queries that ran at once. */
    async function burst(perRunWrites: number): Promise<number> {
      let running = 0;
      let most = 0;
      // Each query's start and end, as Kysely's plugins see them (within transactions too).
      const counted = dbA.withPlugin({
        transformQuery: (args) => {
          most = Math.max(most, ++running);
          return args.node;
        },
        transformResult: async (args) => {
          running--;
          return args.result;
        },
      });
      const settings = createSubmitSettingsCache((p, name) => readSubmitSettings(dbA, p, name), { ttlMs: 60_000, announce: () => {} });
      const store = createPgStore(counted, settings, { perRunWrites });
      const ids = await Promise.all(Array.from({ length: 12 }, () => a.insertRun(newRun(app)).then((r) => r.runId)));
      expect((await Promise.all(ids.map((id) => a.claimRun(id, 1, "inv-burst", 30)))).every(Boolean)).toBe(true);
      const ended = await Promise.all(ids.map((id) => store.endAttempt(id, 1, "inv-burst", failed, decideFailed)));
      expect(ended.every(Boolean)).toBe(true);
      return most;
    }
    expect(await burst(2)).toBeLessThanOrEqual(2);
    // Unbounded, the same burst runs more at once: the count above would see it.
    expect(await burst(12)).toBeGreaterThan(2);
  });

  it("lets a submit that comes close after another wait its window for more, and writes a lone one at once", async () => {
    const app = normaliseApp({ name: "windowed", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const settings = createSubmitSettingsCache((p, name) => readSubmitSettings(dbA, p, name), { ttlMs: 60_000 });
    const windowed = createPgStore(dbA, settings, { submitWindowMs: 200 });
    const submit = (store: SchedulerStore) => store.submitRun("p1", "windowed", (found) => newRun(found)).then((r) => r.runId);
    // Rows written by one transaction share its id (xmin).
    const txOf = async (ids: string[]) => {
      const { rows } = await sql<{ tx: string }>`select xmin::text as tx from runs where id = any(${ids}::uuid[]) order by created_at`.execute(dbA);
      return rows.map((r) => r.tx);
    };
    await submit(windowed); // the settings read, so that what follows is one insert each
    await new Promise((r) => setTimeout(r, 250));
    // Sixteen submits 10 ms apart: the first (none came within 200 ms before
    // it) is written at once; once the recent ones come often enough for
    // the window to hold two more, one opens and the last ones share it.
    const paced: Promise<string>[] = [];
    for (let i = 0; i < 16; i++) {
      paced.push(submit(windowed));
      await new Promise((r) => setTimeout(r, 10));
    }
    const tx = await txOf(await Promise.all(paced));
    expect(tx.slice(1)).not.toContain(tx[0]);
    expect(new Set(tx.slice(-4)).size).toBe(1);
    // Without a window (the default) the same pace is a commit each.
    await new Promise((r) => setTimeout(r, 250));
    const plain = [submit(a)];
    await new Promise((r) => setTimeout(r, 20));
    plain.push(submit(a));
    await new Promise((r) => setTimeout(r, 20));
    plain.push(submit(a));
    const [, p2, p3] = await txOf(await Promise.all(plain));
    expect(p2).not.toBe(p3);
  });

  it("starts a run for an invoker in the submit's statement (a handoff), and hands back only what the invoker never got", async () => {
    const app = normaliseApp({ name: "handoff", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const S1 = "00000000-0000-4000-8000-0000000000b1";
    const startFor = { invokerId: "inv-h", leaseSeconds: 30, streamId: S1 };
    // Concurrent submits share one statement: each started for its invoker.
    const submitted = await Promise.all(Array.from({ length: 4 }, () => a.submitRun("p1", "handoff", (found) => newRun(found), undefined, startFor)));
    for (const s of submitted) {
      expect(s).toMatchObject({ existing: false, dispatch: null, started: { attempt: 1, app: "handoff", upstreamUrl: "http://127.0.0.1:1", query: "a=1", timeoutSeconds: 60 } });
      const run = await a.findRun("p1", s.runId);
      expect(run).toMatchObject({ status: "running", owner: "inv-h" });
      expect(run!.started_at).toBeInstanceOf(Date);
      expect(run!.lease_expires_at!.getTime()).toBeGreaterThan(Date.now() + 20_000);
      expect(await a.findAttempts(s.runId)).toMatchObject([{ attempt: 1, invoker_id: "inv-h", finished_at: null }]);
    }
    // Its session exists, so its heartbeat keeps the runs (a lost one is found from it).
    expect(await a.renewSession("inv-h", [{ runId: submitted[0]!.runId, attempt: 1 }], 30)).toEqual(new Set([`${submitted[0]!.runId}:1`]));
    // A keyed submit is never started at submit: it takes the transaction and is dispatched.
    const keyed = await a.submitRun("p1", "handoff", (found) => newRun(found, { idempotencyKey: "k-handoff" }), undefined, startFor);
    expect(keyed).toMatchObject({ started: null, dispatch: { attempt: 1 } });

    const [lost, held, ended, other] = submitted.map((s) => s.runId) as [string, string, string, string];
    expect(await a.endSucceeded(ended, 1, "inv-h", ok)).toBeDefined();
    // returnRuns: only the named attempt, only the invoker's own.
    expect(await a.returnRuns("inv-other", [{ runId: other, attempt: 1 }])).toEqual([]);
    expect(await a.returnRuns("inv-h", [{ runId: other, attempt: 1 }])).toMatchObject([{ runId: other, attempt: 1, project: "p1", app: "handoff" }]);
    expect(await a.findRun("p1", other)).toMatchObject({ status: "dispatched", owner: null, started_at: null, lease_expires_at: null });
    expect(await a.findAttempts(other)).toEqual([]);
    // The dispatched run is claimable again, by anyone.
    expect(await b.claimRun(other, 1, "inv-b", 30)).toMatchObject({ status: "running", owner: "inv-b" });

    // A run the same invoker claimed (not started on a stream): never handed back by a stream's repair.
    const { runId: claimedRun } = await a.insertRun(newRun(app));
    expect(await a.claimRun(claimedRun, 1, "inv-h", 30)).toBeDefined();
    // returnOrphans: only attempts of the named streams, not what is held, not what ended.
    expect(await a.returnOrphans("inv-h", [], ["00000000-0000-4000-8000-0000000000b2"])).toEqual([]);
    expect(await a.returnOrphans("inv-h", [], [])).toEqual([]);
    expect(await a.returnOrphans("inv-h", [{ runId: held, attempt: 1 }], [S1])).toMatchObject([{ runId: lost }]);
    expect((await a.findRun("p1", claimedRun))?.status).toBe("running");
    expect((await a.findRun("p1", lost))?.status).toBe("dispatched");
    expect((await a.findRun("p1", held))?.status).toBe("running");
    expect((await a.findRun("p1", ended))?.status).toBe("succeeded");
    expect((await a.findRun("p1", other))?.owner).toBe("inv-b");
  });

  it("says when the first delayed run is due, so the reconciler can sleep till then", async () => {
    const app = normaliseApp({ name: "later", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const soon = new Date(Date.now() + 60_000);
    await a.insertRun(newRun(app, { notBefore: new Date(Date.now() + 120_000) }));
    await a.insertRun(newRun(app, { notBefore: soon }));
    const due = await a.dueWork(30, 30);
    expect(due.nextDueAt?.getTime()).toBe(soon.getTime());
  });

  it("lets one invoker claim an attempt, refuses a late result and a second claim", async () => {
    const app = normaliseApp({ name: "claims", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const { runId } = await a.insertRun(newRun(app));
    const [c1, c2] = await Promise.all([a.claimRun(runId, 1, "inv-a", 30), b.claimRun(runId, 1, "inv-b", 30)]);
    expect([c1, c2].filter(Boolean)).toHaveLength(1);
    const owner = c1 ? "inv-a" : "inv-b";
    const stranger = c1 ? "inv-b" : "inv-a";
    // The owner may claim again (its first answer was lost); a stranger may not.
    expect(await a.claimRun(runId, 1, owner, 30)).toMatchObject({ id: runId, status: "running", owner });
    expect(await a.claimRun(runId, 1, stranger, 30)).toBeUndefined();
    const policy = (run: { attempt: number; max_attempts: number }) =>
      decide(app, run.attempt, run.max_attempts, { statusCode: 200, errorCode: "", errorMessage: "", retryAfterSeconds: 0 });
    expect(await a.endAttempt(runId, 1, stranger, ok, policy)).toBeUndefined();
    const ended = await a.endAttempt(runId, 1, owner, ok, policy);
    expect(ended?.run.status).toBe("succeeded");
    expect(ended?.run.response_body?.toString()).toBe("ok");
    expect(await a.endAttempt(runId, 1, owner, ok, policy)).toBeUndefined();
    expect(await a.findAttempts(runId)).toMatchObject([{ attempt: 1, invoker_id: owner, status_code: 200 }]);
  });

  it("leases per invoker: a heartbeat renews one session row, and a run is lost only when its invoker's session ran out", async () => {
    const app = normaliseApp({ name: "leases", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const r1 = await a.insertRun(newRun(app));
    const r2 = await a.insertRun(newRun(app));
    const r3 = await a.insertRun(newRun(app));
    await a.claimRun(r1.runId, 1, "inv-live", 1);
    await a.claimRun(r2.runId, 1, "inv-dead", 1);
    await a.claimRun(r3.runId, 1, "inv-live", 1);
    // The heartbeat answers which named attempts the invoker still owns (r2 is not its own).
    const owned = await a.renewSession("inv-live", [{ runId: r1.runId, attempt: 1 }, { runId: r2.runId, attempt: 1 }], 60);
    expect([...owned]).toEqual([`${r1.runId}:1`]);
    // A heartbeat may name thousands of runs (16,000 held calls on one invoker).
    const many = Array.from({ length: 20_000 }, (_, i) => ({ runId: r1.runId, attempt: i + 1 }));
    expect([...(await a.renewSession("inv-live", many, 60))]).toEqual([`${r1.runId}:1`]);
    await new Promise((r) => setTimeout(r, 1200));
    // r3 was not named by any heartbeat: its invoker's session keeps it.
    const expired = (await a.expiredLeases(100)).map((l) => l.id);
    expect(expired).toContain(r2.runId);
    expect(expired).not.toContain(r1.runId);
    expect(expired).not.toContain(r3.runId);

    // inv-dead comes back and beats between the reconciler's read and its end: not lost.
    await a.renewSession("inv-dead", [{ runId: r2.runId, attempt: 1 }], 60);
    const policy = (run: { attempt: number; max_attempts: number }) =>
      decide(app, run.attempt, run.max_attempts, { statusCode: 0, errorCode: "interrupted", errorMessage: "lost", retryAfterSeconds: 0 });
    const lost = { ...ok, statusCode: 0, body: null };
    expect(await a.endAttempt(r2.runId, 1, null, lost, policy)).toBeUndefined();
    expect(await a.findRun("p1", r2.runId)).toMatchObject({ status: "running", owner: "inv-dead" });
    expect((await a.expiredLeases(100)).map((l) => l.id)).not.toContain(r2.runId);
  });

  it("a claim by an invoker whose session lapsed is covered by the run's own lease until its next heartbeat", async () => {
    const app = normaliseApp({ name: "lapsed", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const r1 = await a.insertRun(newRun(app));
    await a.renewSession("inv-lapsed", [], 1);
    await new Promise((r) => setTimeout(r, 1100));
    await a.claimRun(r1.runId, 1, "inv-lapsed", 60);
    expect((await a.expiredLeases(100)).map((l) => l.id)).not.toContain(r1.runId);
  });

  it("expires first attempts queued past the app's TTL", async () => {
    const app = normaliseApp({ name: "ttl", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 1, queueTtlSeconds: 1 });
    await a.upsertApp("p1", app);
    await a.insertRun(newRun(app));
    const waiting = await a.insertRun(newRun(app, { webhookUrl: "http://example.com/h" }));
    await new Promise((r) => setTimeout(r, 1100));
    const expired = await a.expireQueued();
    expect(expired.map((e) => e.id)).toEqual([waiting.runId]);
    expect(await a.findRun("p1", waiting.runId)).toMatchObject({ status: "expired", error_code: "queue_ttl_exceeded", webhook_state: "pending" });
  });

  it("a run's own deadline: never claimed past it (a started run's re-claim still is), never dispatched past it, then expired", async () => {
    const app = normaliseApp({ name: "deadline", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    const limited = normaliseApp({ name: "deadline-q", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 1, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    await a.upsertApp("p1", limited);
    const soon = () => new Date(Date.now() + 800);
    const unclaimed = await a.insertRun(newRun(app, { expiresAt: soon(), webhookUrl: "http://example.com/h" }));
    const started = await a.insertRun(newRun(app, { expiresAt: soon() }));
    const later = await a.insertRun(newRun(app, { expiresAt: new Date(Date.now() + 60_000) }));
    const blocker = await a.insertRun(newRun(limited));
    const waitingDeadline = soon();
    const waiting = await a.insertRun(newRun(limited, { expiresAt: waitingDeadline }));
    expect([unclaimed.dispatch, waiting.dispatch === null]).toEqual([expect.objectContaining({ runId: unclaimed.runId }), true]);
    expect((await a.findRun("p1", waiting.runId))?.expires_at?.getTime()).toBe(waitingDeadline.getTime());
    await a.claimRun(started.runId, 1, "inv-d", 60);
    await a.claimRun(blocker.runId, 1, "inv-d", 60);
    // The reconciler sleeps until the first deadline of a waiting run at the latest.
    const before = await a.dueWork(30, 30);
    expect(before.nextDueAt!.getTime()).toBeLessThanOrEqual(waitingDeadline.getTime());
    expect(before.expire).toBe(false);

    await new Promise((r) => setTimeout(r, 900));
    expect(await a.claimRun(unclaimed.runId, 1, "inv-d", 60)).toBeUndefined();
    expect(await b.claimRun(unclaimed.runId, 1, "inv-e", 60)).toBeUndefined();
    expect(await a.claimRun(started.runId, 1, "inv-d", 60)).toMatchObject({ id: started.runId, status: "running" });
    expect(await a.claimRun(later.runId, 1, "inv-d", 60)).toMatchObject({ id: later.runId, status: "running" });
    // The blocker ends: its slot is not given to the run past its deadline.
    await a.endSucceeded(blocker.runId, 1, "inv-d", ok);
    expect(await a.dispatchQueued("p1", "deadline-q", 10)).toEqual([]);

    expect((await a.dueWork(30, 30)).expire).toBe(true);
    const expired = await a.expireQueued();
    expect(expired.map((e) => e.id).sort()).toEqual([unclaimed.runId, waiting.runId].sort());
    expect(expired.find((e) => e.id === unclaimed.runId)?.webhook).toBe(true);
    expect(await a.findRun("p1", unclaimed.runId)).toMatchObject({
      status: "expired",
      error_code: "queue_ttl_exceeded",
      webhook_state: "pending",
      started_at: null,
    });
    expect((await a.findRun("p1", waiting.runId))?.error_message).toContain("own queue_ttl_seconds");
    expect(await a.findAttempts(unclaimed.runId)).toEqual([]);
    expect(await a.findRun("p1", started.runId)).toMatchObject({ status: "running" });
    expect(await a.expireQueued()).toEqual([]);
  });

  it("lists newest first with a stable cursor, scoped to the project", async () => {
    const app = normaliseApp({ name: "listing", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await a.insertRun(newRun(app))).runId);
    const page1 = await a.listRuns({ project: "p1", app: "listing", limit: 2 });
    expect(page1.map((r) => r.id)).toEqual([ids[4], ids[3]]);
    await a.insertRun(newRun(app)); // a concurrent insert does not shift later pages
    const last = page1[1]!;
    const page2 = await a.listRuns({ project: "p1", app: "listing", limit: 2, after: { createdAt: last.created_at, id: last.id } });
    expect(page2.map((r) => r.id)).toEqual([ids[2], ids[1]]);
    expect(await a.listRuns({ project: "p2", app: "listing", limit: 10 })).toEqual([]);
    expect(await a.findRun("p2", ids[0]!)).toBeUndefined();
  });

  it("pages runs created within one millisecond without skipping any (a cursor's time has only milliseconds)", async () => {
    const app = normaliseApp({ name: "same-ms", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await a.insertRun(newRun(app))).runId);
    // As a busy scheduler makes them: four runs, microseconds apart, in one millisecond.
    for (const [i, id] of ids.entries()) {
      await sql`update runs set created_at = '2026-01-01T00:00:00.000100Z'::timestamptz + make_interval(secs => ${i * 0.0002}) where id = ${id}::uuid`.execute(dbA);
    }
    const page1 = await a.listRuns({ project: "p1", app: "same-ms", limit: 2 });
    expect(page1.map((r) => r.id)).toEqual([ids[3], ids[2]]);
    const last = page1[1]!;
    const page2 = await a.listRuns({ project: "p1", app: "same-ms", limit: 2, after: { createdAt: last.created_at, id: last.id } });
    expect(page2.map((r) => r.id)).toEqual([ids[1], ids[0]]);
  });

  it("hands back dispatches nobody claimed, once per period, and finished webhooks no notifier took", async () => {
    const app = normaliseApp({ name: "repair", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    const lost = await a.insertRun(newRun(app, { webhookUrl: "http://example.com/h" }));
    await new Promise((r) => setTimeout(r, 1100));
    // Both schedulers look at once: the run is republished by exactly one of them.
    const [x, y] = await Promise.all([a.staleDispatches(1, 100), b.staleDispatches(1, 100)]);
    expect([...x, ...y].filter((d) => d.runId === lost.runId)).toHaveLength(1);
    expect((await a.staleDispatches(1, 100)).map((d) => d.runId)).not.toContain(lost.runId);

    // It finishes; no notifier reports taking its webhook: republished after the period, once.
    await a.claimRun(lost.runId, 1, "inv", 30);
    await a.endAttempt(lost.runId, 1, "inv", ok, (run) =>
      decide(app, run.attempt, run.max_attempts, { statusCode: 200, errorCode: "", errorMessage: "", retryAfterSeconds: 0 }),
    );
    expect((await a.untakenWebhooks(1, 100)).map((w) => w.id)).not.toContain(lost.runId);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await a.untakenWebhooks(1, 100)).map((w) => w.id)).toContain(lost.runId);
    expect((await a.untakenWebhooks(1, 100)).map((w) => w.id)).not.toContain(lost.runId);
    // Once a notifier reports the delivery, it is never republished again.
    await a.setWebhookState(lost.runId, "pending");
    await new Promise((r) => setTimeout(r, 1100));
    expect((await a.untakenWebhooks(1, 100)).map((w) => w.id)).not.toContain(lost.runId);
  });

  it("reads a watch's changed runs in one statement: the project's only, oldest first, without bodies", async () => {
    const app = normaliseApp({ name: "watched", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    await a.upsertApp("p2", app);
    const mine = [];
    for (let i = 0; i < 3; i++) mine.push((await a.insertRun(newRun(app, { webhookUrl: "http://example.com/h" }))).runId);
    const theirs = (await a.insertRun(newRun(app, { project: "p2" }))).runId;
    const found = await a.findRuns("p1", [mine[2]!, theirs, mine[0]!, "00000000-0000-4000-8000-000000000000"]);
    expect(found.map((r) => r.id)).toEqual([mine[0], mine[2]]);
    expect(found[0]).toMatchObject({ project_id: "p1", app: "watched", status: "dispatched", request_body: null, response_body: null });
    expect(await a.findRuns("p1", [])).toEqual([]);
    // A webhook state change names the run's project (for its change notice); no webhook: undefined.
    expect(await a.setWebhookState(mine[1]!, "pending")).toBe("p1");
    expect(await a.setWebhookState(theirs, "pending")).toBeUndefined();
    // Many in one statement: runs with a webhook are set and named with their projects, the others left out.
    const set = await a.setWebhookStates([
      { runId: mine[0]!, state: "delivered" },
      { runId: theirs, state: "delivered" },
      { runId: mine[2]!, state: "failed" },
      { runId: "00000000-0000-4000-8000-000000000000", state: "delivered" },
    ]);
    expect(set.sort((x, y) => x.runId.localeCompare(y.runId))).toEqual(
      [mine[0]!, mine[2]!].sort().map((runId) => ({ runId, project: "p1" })),
    );
    const after = await a.findRuns("p1", mine);
    expect(after.map((r) => [r.id, r.webhook_state])).toEqual(
      expect.arrayContaining([
        [mine[0], "delivered"],
        [mine[1], "pending"],
        [mine[2], "failed"],
      ]),
    );
  });

  it("coalesces a burst of change notices into one read of Postgres", async () => {
    const app = normaliseApp({ name: "bursty", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 0, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    let notify: (runId: string) => void = () => undefined;
    const bus = {
      watchProject: (_p: string, fn: (runId: string) => void) => ((notify = fn), () => undefined),
      watchesReady: () => Promise.resolve(),
    } as unknown as EventBus;
    const reads: number[] = [];
    const store = { ...a, findRuns: (project: string, ids: readonly string[]) => (reads.push(ids.length), a.findRuns(project, ids)) };
    const ac = new AbortController();
    const sent: string[] = [];
    let live!: () => void;
    const listening = new Promise<void>((r) => (live = r));
    const done = watchProjectRuns({ store, bus }, "p1", { app: "bursty", runIds: [], createdAfter: undefined }, ac.signal, {
      live,
      run: (r) => sent.push(`${r.id}:${r.status}`),
    });
    await listening;
    // 30 runs submitted, each noticed twice (created, dispatched), all before the watch looks.
    const ids = (await Promise.all(Array.from({ length: 30 }, () => a.insertRun(newRun(app))))).map((r) => r.runId);
    for (const id of [...ids, ...ids]) notify(id);
    const until = Date.now() + 5000;
    while (sent.length < 30 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    await done;
    expect(reads).toEqual([30]);
    expect(sent.sort()).toEqual(ids.map((id) => `${id}:dispatched`).sort());
  });

  it("refuses a submit with 429 when a limited app's queue is full", async () => {
    const app = normaliseApp({ name: "full", url: "http://127.0.0.1:1", timeoutSeconds: 60, maxConcurrency: 1, queueTtlSeconds: 0 });
    await a.upsertApp("p1", app);
    await a.insertRun(newRun(app, { maxQueuedPerApp: 1 }));
    await a.insertRun(newRun(app, { maxQueuedPerApp: 1 }));
    const err = await a.insertRun(newRun(app, { maxQueuedPerApp: 1 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LonghaulError);
    expect(err).toMatchObject({ code: "resource_exhausted", retryAfterSeconds: 5 });
  });
});
