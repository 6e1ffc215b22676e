import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { createDb, migrate, sql } from "@longhaul/shared/db";
import { resultUrlKey } from "@longhaul/shared/result-url";
import type { Kysely } from "kysely";
import { Webhook } from "standardwebhooks";
import { createTestDatabase } from "../../../../../tests/helpers/isolation.js";
import { createNotifierCore } from "../../core/notifier-core.js";
import { startPoller } from "../../core/poller.js";
import type { DeliveryInput, DeliveryState, RunSource } from "../../core/ports.js";
import { eventually, startReceiver, type Receiver } from "../../testing/receiver.js";
import { parseNetworks, webhookNetworks } from "@longhaul/shared/egress";
import { createWebhookSender } from "../http/webhook-sender.js";
import { createPgDeliveryStore } from "./delivery-store.js";
import { notifierMigrationSet } from "./migrations.js";
import type { NotifierDatabase } from "./schema.js";
import { createPgSecretStore } from "./secret-store.js";

// The core on real Postgres, sending to real receivers; only the scheduler is
// an in-memory RunSource here (service.test.ts puts a gRPC server there).

const log = createLogger("notifier-test", "silent");
let database: Awaited<ReturnType<typeof createTestDatabase>>;
const dbs: Kysely<NotifierDatabase>[] = [];
const stops: Array<() => Promise<void>> = [];
const receivers: Receiver[] = [];

function openDb(): Kysely<NotifierDatabase> {
  const db = createDb<NotifierDatabase>({ url: database.url, log, poolSize: 5 });
  dbs.push(db);
  return db;
}

beforeAll(async () => {
  database = await createTestDatabase();
  await migrate(openDb(), notifierMigrationSet, log);
});
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});
afterAll(async () => {
  await Promise.all(dbs.map((db) => db.destroy()));
  await database?.drop();
});

/** The scheduler's side, in memory: inputs by run, and every state it was told. */
function fakeRuns() {
  const inputs = new Map<string, DeliveryInput>();
  const told: Array<{ runId: string; state: DeliveryState }> = [];
  const runs: RunSource = {
    getDeliveryInput: async (runId) => inputs.get(runId) ?? null,
    updateWebhookStates: async (states) => {
      told.push(...states);
      return states.map((t) => t.runId);
    },
  };
  const add = (url: string, over: Partial<DeliveryInput> = {}): DeliveryInput => {
    const runId = randomUUID();
    const input: DeliveryInput = {
      runId,
      project: "dev",
      app: "echo",
      webhookUrl: url,
      status: "succeeded",
      statusCode: 200,
      contentType: "application/json",
      body: Buffer.from(JSON.stringify({ run: runId })),
      bodyTruncated: false,
      errorCode: "",
      errorMessage: "",
      traceparent: "",
      ...over,
    };
    inputs.set(runId, input);
    return input;
  };
  return { runs, inputs, told, add, lastTold: (runId: string) => told.filter((t) => t.runId === runId).at(-1)?.state };
}

function makeCore(runs: RunSource, over: { schedule?: number[]; maxConcurrency?: number; db?: Kysely<NotifierDatabase> } = {}) {
  const db = over.db ?? openDb();
  const store = createPgDeliveryStore(db);
  const core = createNotifierCore({
    store,
    secrets: createPgSecretStore(db),
    runs,
    // Generous: on a busy machine a 2-s bound timed answers out, and a retried one is a second send.
    sender: createWebhookSender({
      allowPrivate: true,
      egress: { allowedNetworks: parseNetworks(webhookNetworks(true)), denied: [] },
      timeoutMs: 10_000,
      maxResponseBytes: 64 * 1024,
    }),
    log,
    payload: { maxInlineBytes: 256 * 1024, publicUrl: "http://127.0.0.1:8080", resultUrlKey: resultUrlKey("x".repeat(16)), resultUrlTtlSeconds: 60 },
    retryScheduleSeconds: over.schedule ?? [0, 0.1, 0.1],
    attemptTimeoutMs: 2_000,
    rpcTimeoutMs: 1_000,
    maxConcurrency: over.maxConcurrency ?? 16,
    secretOverlapSeconds: 3600,
  });
  return { core, store, db };
}

function poll(core: ReturnType<typeof makeCore>["core"], intervalMs = 20) {
  const poller = startPoller({ poll: core.pollOnce, intervalMs });
  stops.push(async () => {
    await poller.stop();
    await core.drain();
  });
}

async function receiver(...args: Parameters<typeof startReceiver>) {
  const r = await startReceiver(...args);
  receivers.push(r);
  return r;
}

async function accept(core: ReturnType<typeof makeCore>["core"], input: DeliveryInput) {
  return core.acceptFinished({ runId: input.runId, project: input.project });
}

/** Records a delivery without starting its attempt (as a notifier without room does). */
async function record(store: ReturnType<typeof makeCore>["store"], input: DeliveryInput) {
  return store.create({ runId: input.runId, projectId: input.project, webhookId: `msg_${input.runId}`, url: input.webhookUrl, firstAttemptInMs: 0 });
}

describe("two notifiers on one database", () => {
  it("send each due attempt exactly once", async () => {
    const r = await receiver((_q, res) => setTimeout(() => res.end("ok"), 20 + Math.random() * 30));
    const fake = fakeRuns();
    const sentBy = { a: 0, b: 0 };
    const counting = (who: "a" | "b"): RunSource => ({
      ...fake.runs,
      getDeliveryInput: (id) => {
        sentBy[who] += 1;
        return fake.runs.getDeliveryInput(id);
      },
    });
    const a = makeCore(counting("a"), { maxConcurrency: 8 });
    const b = makeCore(counting("b"), { maxConcurrency: 8 });
    const inputs = Array.from({ length: 60 }, () => fake.add(`${r.url}/hook`));
    // Recorded but not sent at once: the pollers race for them.
    await Promise.all(inputs.map((input) => record(a.store, input)));
    poll(a.core);
    poll(b.core);

    await eventually(async () => {
      const n = await a.db.selectFrom("webhook_deliveries").select("run_id").where("state", "=", "delivered").execute();
      return n.length === inputs.length;
    }, 20_000);

    const ids = r.received.map((q) => q.headers["webhook-id"]);
    expect(ids).toHaveLength(inputs.length);
    expect(new Set(ids).size).toBe(inputs.length);
    const attempts = await a.db.selectFrom("webhook_attempts").select(["run_id", "attempt"]).execute();
    expect(attempts).toHaveLength(inputs.length);
    expect(attempts.every((x) => x.attempt === 1)).toBe(true);
    await eventually(() => inputs.every((i) => fake.lastTold(i.runId) === "delivered"));
    // Both took part.
    expect(sentBy.a).toBeGreaterThan(0);
    expect(sentBy.b).toBeGreaterThan(0);
    expect(sentBy.a + sentBy.b).toBe(inputs.length);
  });

  it("send each webhook once when both take the same events at once (the insert's lease decides)", async () => {
    const r = await receiver((_q, res) => setTimeout(() => res.end("ok"), Math.random() * 20));
    const fake = fakeRuns();
    const a = makeCore(fake.runs, { maxConcurrency: 8 });
    const b = makeCore(fake.runs, { maxConcurrency: 8 });
    poll(a.core);
    poll(b.core);
    const inputs = Array.from({ length: 40 }, () => fake.add(`${r.url}/hook`));
    // Each event reaches both (a redelivery racing the original), both carrying the input.
    await Promise.all(
      inputs.flatMap((input) => [a, b].map((n) => n.core.acceptFinished({ runId: input.runId, project: input.project, input }))),
    );
    await eventually(async () => {
      const n = await a.db
        .selectFrom("webhook_deliveries")
        .select("run_id")
        .where("state", "=", "delivered")
        .where("run_id", "in", inputs.map((i) => i.runId))
        .execute();
      return n.length === inputs.length;
    }, 20_000);
    const ids = r.received.map((q) => q.headers["webhook-id"]);
    expect(ids).toHaveLength(inputs.length);
    expect(new Set(ids).size).toBe(inputs.length);
    await eventually(() => inputs.every((i) => fake.lastTold(i.runId) === "delivered"));
  });

  it("retry an attempt whose notifier died holding it, once its lease runs out", async () => {
    const r = await receiver();
    const fake = fakeRuns();
    const a = makeCore(fake.runs);
    const input = fake.add(r.url);
    await record(a.store, input);
    // Notifier A leases the delivery for 300 ms and dies before sending.
    const stale = randomUUID();
    expect(await a.store.claimDue(10, 300, stale, input.runId)).toHaveLength(1);

    const b = makeCore(fake.runs);
    expect(await b.store.claimDue(10, 300, randomUUID(), input.runId)).toHaveLength(0); // still A's
    poll(b.core);
    await eventually(() => r.received.length === 1, 5_000);
    await eventually(async () => (await b.store.get(input.runId))?.delivery.state === "delivered");

    // A's late write, under its lost lease, changes nothing.
    const late = await a.store.finishAttempt(
      input.runId,
      stale,
      { runId: input.runId, attempt: 1, startedAt: new Date(), durationMs: 1, statusCode: 500, error: "late", responseExcerpt: null },
      { state: "failed", nextAttemptInMs: null, lastError: "late" },
    );
    expect(late).toBe(false);
    const after = await b.store.get(input.runId);
    expect(after?.delivery.state).toBe("delivered");
    expect(after?.attempts.map((x) => x.statusCode)).toEqual([200]);
  });
});

describe("batched writes (one statement and one commit for concurrent callers)", () => {
  const row = (runId: string) => ({ runId, projectId: "dev", webhookId: `msg_${runId}`, url: "https://x.example/", firstAttemptInMs: 60_000 });
  const stored = async (db: Kysely<NotifierDatabase>, ids: string[]) =>
    (await db.selectFrom("webhook_deliveries").select("run_id").where("run_id", "in", ids).execute()).map((r) => r.run_id).sort();

  it("fail only the caller of a bad row; the others' rows are committed", async () => {
    const { store, db } = makeCore(fakeRuns().runs);
    const [a, b] = [randomUUID(), randomUUID()];
    const results = await Promise.allSettled([store.create(row(a)), store.create(row("not-a-uuid")), store.create(row(b))]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: "22P02" });
    expect(await stored(db, [a, b])).toEqual([a, b].sort());
  });

  it("records a delivery with its first attempt in the one statement of a batch; a run with a delivery already gets nothing", async () => {
    const { store } = makeCore(fakeRuns().runs);
    const [a, b, existing] = [randomUUID(), randomUUID(), randomUUID()];
    await store.create(row(existing));
    const attempt = (runId: string, statusCode: number) => ({
      runId, attempt: 1, startedAt: new Date(), durationMs: 12, statusCode, error: null, responseExcerpt: "ok\u0000",
    });
    const d = (runId: string) => ({ runId, projectId: "p", webhookId: `msg_${runId}`, url: "http://127.0.0.1:9/hook" });
    const results = await Promise.all([
      store.createAttempted(d(a), attempt(a, 200), { state: "delivered", nextAttemptInMs: null, lastError: null }),
      store.createAttempted(d(b), attempt(b, 500), { state: "pending", nextAttemptInMs: 60_000, lastError: "500" }),
      store.createAttempted(d(existing), attempt(existing, 200), { state: "delivered", nextAttemptInMs: null, lastError: null }),
    ]);
    expect(results).toEqual([true, true, false]);
    expect(await store.get(a)).toMatchObject({ delivery: { state: "delivered", attemptsMade: 1, nextAttemptAt: null }, attempts: [{ attempt: 1, statusCode: 200, responseExcerpt: "ok\ufffd" }] });
    const retry = await store.get(b);
    expect(retry).toMatchObject({ delivery: { state: "pending", attemptsMade: 1, lastError: "500" }, attempts: [{ statusCode: 500 }] });
    expect(retry!.delivery.nextAttemptAt!.getTime()).toBeGreaterThan(Date.now() + 50_000);
    // The pending one is the poller's: claimable once due, not before.
    expect(await store.claimDue(10, 1000, randomUUID(), b)).toEqual([]);
    expect(await store.get(existing)).toMatchObject({ delivery: { state: "pending", attemptsMade: 0 }, attempts: [] });
  });

  it("fail every caller when Postgres fails the batch, and commit none of it", async () => {
    const { store, db } = makeCore(fakeRuns().runs);
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const [locker, watcher] = [openDb(), openDb()];
    await locker.transaction().execute(async (trx) => {
      await sql`lock table webhook_deliveries in access exclusive mode`.execute(trx);
      const pending = Promise.allSettled(ids.map((id) => store.create(row(id))));
      // The batch's one statement waits on the lock; cancelling it is a Postgres error of the whole batch.
      await eventually(async () => {
        const { rows } = await sql<{ pid: number }>`
          select pid from pg_stat_activity
          where wait_event_type = 'Lock' and query like '%insert into webhook_deliveries%'`.execute(watcher);
        for (const r of rows) await sql`select pg_cancel_backend(${r.pid})`.execute(watcher);
        return rows.length > 0;
      });
      const results = await pending;
      expect(results.map((r) => r.status)).toEqual(["rejected", "rejected", "rejected"]);
      expect((results[0] as PromiseRejectedResult).reason).toMatchObject({ code: "57014" });
    });
    expect(await stored(db, ids)).toEqual([]);
  });
});

describe("delivery outcomes", () => {
  it("retries a 500 and delivers on the 200 that follows", async () => {
    const r = await receiver((_q, res, _r, i) => res.writeHead(i === 0 ? 500 : 200).end(i === 0 ? "down" : "ok"));
    const fake = fakeRuns();
    const { core, store } = makeCore(fake.runs);
    const input = fake.add(r.url);
    const accepted = await accept(core, input);
    expect(accepted.result).toBe("accepted");
    // The first attempt started with the accept; its end tells the state it leaves.
    await core.drain();
    expect((await store.get(input.runId))?.delivery).toMatchObject({ state: "pending", attemptsMade: 1, lastError: "HTTP 500" });
    expect(fake.lastTold(input.runId)).toBe("pending");
    poll(core);
    await eventually(async () => (await store.get(input.runId))?.delivery.state === "delivered");
    const found = await store.get(input.runId);
    expect(found?.attempts.map((a) => [a.attempt, a.statusCode, a.responseExcerpt])).toEqual([
      [1, 500, "down"],
      [2, 200, "ok"],
    ]);
    expect(r.received.map((q) => q.headers["webhook-id"])).toEqual([`msg_${input.runId}`, `msg_${input.runId}`]);
    await eventually(() => fake.lastTold(input.runId) === "delivered");
    // Both attempts carry valid signatures of the project's secret.
    const { secret } = await core.getSecret("dev");
    for (const q of r.received) expect(() => new Webhook(secret).verify(q.body, q.headers as Record<string, string>)).not.toThrow();
  });

  it("fails after the last attempt of the schedule", async () => {
    const r = await receiver((_q, res) => res.writeHead(503).end());
    const fake = fakeRuns();
    const { core, store } = makeCore(fake.runs, { schedule: [0, 0.05, 0.05] });
    const input = fake.add(r.url);
    await accept(core, input);
    poll(core);
    await eventually(async () => (await store.get(input.runId))?.delivery.state === "failed");
    expect(r.received).toHaveLength(3);
    expect((await store.get(input.runId))?.attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    await eventually(() => fake.lastTold(input.runId) === "failed");
  });

  it("honours a Retry-After later than the schedule", async () => {
    const r = await receiver((_q, res, _r, i) => (i === 0 ? res.writeHead(429, { "retry-after": "30" }).end() : res.end()));
    const fake = fakeRuns();
    const { core, store } = makeCore(fake.runs, { schedule: [0, 0.05] });
    const input = fake.add(r.url);
    const accepted = await accept(core, input);
    const before = Date.now();
    await core.deliverNow(input.runId, accepted.input);
    await core.drain();
    const d = (await store.get(input.runId))!.delivery;
    expect(d.state).toBe("pending");
    expect(d.nextAttemptAt!.getTime() - before).toBeGreaterThan(25_000);
    expect(d.nextAttemptAt!.getTime() - before).toBeLessThan(35_000);
  });

  it("stops at a 410 after one attempt", async () => {
    const r = await receiver((_q, res) => res.writeHead(410).end());
    const fake = fakeRuns();
    const { core, store } = makeCore(fake.runs);
    const input = fake.add(r.url);
    await accept(core, input);
    poll(core);
    await eventually(async () => (await store.get(input.runId))?.delivery.state === "failed");
    await new Promise((res) => setTimeout(res, 300));
    expect(r.received).toHaveLength(1);
    expect((await store.get(input.runId))?.delivery.lastError).toMatch(/410/);
  });

  it("records a run with no webhook as nothing, and a repeated event once", async () => {
    const r = await receiver();
    const fake = fakeRuns();
    const { core, store } = makeCore(fake.runs);
    const none = fake.add("");
    expect((await accept(core, none)).result).toBe("no_webhook");
    expect(await store.get(none.runId)).toBeNull();
    expect((await core.acceptFinished({ runId: randomUUID(), project: "dev" })).result).toBe("run_gone");

    const input = fake.add(r.url);
    await accept(core, input);
    await accept(core, input);
    await accept(core, input);
    poll(core);
    await eventually(async () => (await store.get(input.runId))?.delivery.state === "delivered");
    // A late repeat finds the delivery done and changes nothing: told delivered, never pending.
    await accept(core, input);
    await new Promise((res) => setTimeout(res, 200));
    await core.drain();
    expect(r.received).toHaveLength(1);
    expect(fake.told.filter((t) => t.runId === input.runId).map((t) => t.state)).toEqual(["delivered"]);
  });

  it("postpones, without spending an attempt, while the scheduler cannot say what to send", async () => {
    const r = await receiver();
    const fake = fakeRuns();
    let down = false;
    const runs: RunSource = {
      getDeliveryInput: async (id) => {
        if (down) throw new Error("scheduler unavailable");
        return fake.runs.getDeliveryInput(id);
      },
      updateWebhookStates: fake.runs.updateWebhookStates,
    };
    const { core, store } = makeCore(runs);
    const input = fake.add(r.url);
    await record(store, input);
    down = true;
    expect(await core.pollOnce()).toBe(1);
    await core.drain();
    const d = (await store.get(input.runId))!.delivery;
    expect(d).toMatchObject({ state: "pending", attemptsMade: 0 });
    expect(d.lastError).toMatch(/scheduler unavailable/);
    expect(d.nextAttemptAt!.getTime()).toBeGreaterThan(Date.now() + 5_000);
    expect(r.received).toHaveLength(0);
  });
});

describe("redelivery and secrets", () => {
  it("redelivers a delivered webhook in a new series, numbering on", async () => {
    const r = await receiver((_q, res, _r, i) => res.writeHead(i === 1 ? 500 : 200).end());
    const fake = fakeRuns();
    const { core, store } = makeCore(fake.runs, { schedule: [0, 0.05] });
    const input = fake.add(r.url);
    await accept(core, input);
    poll(core);
    await eventually(async () => (await store.get(input.runId))?.delivery.state === "delivered");

    await expect(core.redeliver("other-project", input.runId)).rejects.toMatchObject({ code: "not_found" });
    const again = await core.redeliver("dev", input.runId);
    expect(again.delivery.state).not.toBe("failed");
    // Attempt 2 gets a 500 and is retried by the schedule (a new series), attempt 3 delivers.
    await eventually(async () => (await store.get(input.runId))?.attempts.length === 3);
    const found = (await store.get(input.runId))!;
    expect(found.delivery).toMatchObject({ state: "delivered", attemptsMade: 3, seriesStart: 1 });
    expect(found.attempts.map((a) => [a.attempt, a.statusCode])).toEqual([
      [1, 200],
      [2, 500],
      [3, 200],
    ]);
  });

  it("refuses to redeliver while an attempt is in flight", async () => {
    const fake = fakeRuns();
    const { core, store } = makeCore(fake.runs);
    const input = fake.add("http://127.0.0.1:9/");
    await record(store, input);
    await store.claimDue(1, 60_000, randomUUID(), input.runId);
    await expect(core.redeliver("dev", input.runId)).rejects.toMatchObject({ code: "conflict" });
    await expect(core.listDeliveries("dev", randomUUID())).rejects.toMatchObject({ code: "not_found" });
  });

  it("creates a project's secret once and keeps the previous one through a rotation", async () => {
    const fake = fakeRuns();
    const { core } = makeCore(fake.runs);
    const first = await core.getSecret("proj-a");
    expect(first.secret).toMatch(/^whsec_/);
    expect(await core.getSecret("proj-a")).toEqual(first);
    const rotated = await core.rotateSecret("proj-a");
    expect(rotated.secret).not.toBe(first.secret);
    expect(rotated.previousSecret).toBe(first.secret);
    expect(rotated.previousExpiresAt!.getTime()).toBeGreaterThan(Date.now() + 3500_000);
    expect((await core.getSecret("proj-b")).secret).not.toBe(rotated.secret);
  });
});
