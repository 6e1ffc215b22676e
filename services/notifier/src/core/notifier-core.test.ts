import { describe, expect, it } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import { createLogger } from "@longhaul/shared/logger";
import { createNotifierCore } from "./notifier-core.js";
import type {
  Delivery,
  DeliveryAttempt,
  DeliveryInput,
  DeliveryState,
  DeliveryStore,
  RunSource,
  SecretStore,
  SendResult,
  WebhookRequest,
} from "./ports.js";

// The core with plain in-memory fakes of its ports (the Postgres store is
// tested against the real database in adapters/pg).

function memoryStore() {
  const rows = new Map<string, Delivery & { token: string | null; dueInMs: number | null; reported: DeliveryState | null }>();
  const attempts: DeliveryAttempt[] = [];
  const store: DeliveryStore = {
    async create(d, lease) {
      if (rows.has(d.runId)) return null;
      const now = new Date();
      const row = {
        ...d,
        state: "pending" as const,
        attemptsMade: 0,
        seriesStart: 0,
        nextAttemptAt: now,
        lastError: null,
        createdAt: now,
        updatedAt: now,
        token: lease?.token ?? null,
        dueInMs: d.firstAttemptInMs,
        reported: null,
      };
      rows.set(d.runId, row);
      return { ...row };
    },
    async claimDue(limit, _leaseMs, token, runId) {
      const due = [...rows.values()].filter(
        (r) => r.state === "pending" && r.token === null && r.dueInMs === 0 && (runId === undefined || r.runId === runId),
      );
      return due.slice(0, limit).map((r) => {
        r.token = token;
        return { ...r };
      });
    },
    async finishAttempt(runId, token, attempt, outcome) {
      const r = rows.get(runId);
      if (!r || r.token !== token) return false;
      if (attempt) {
        attempts.push(attempt);
        r.attemptsMade = attempt.attempt;
      }
      Object.assign(r, { state: outcome.state, dueInMs: outcome.nextAttemptInMs, lastError: outcome.lastError, token: null });
      return true;
    },
    async createAttempted(d, attempt, outcome) {
      if (rows.has(d.runId)) return false;
      const now = new Date();
      rows.set(d.runId, {
        ...d,
        state: outcome.state,
        attemptsMade: attempt.attempt,
        seriesStart: 0,
        nextAttemptAt: now,
        lastError: outcome.lastError,
        createdAt: now,
        updatedAt: now,
        token: null,
        dueInMs: outcome.nextAttemptInMs,
        reported: null,
      });
      attempts.push(attempt);
      return true;
    },
    async release(runId, token, retryInMs, lastError) {
      const r = rows.get(runId);
      if (r?.token === token) Object.assign(r, { token: null, dueInMs: retryInMs, lastError });
    },
    async get(runId) {
      const r = rows.get(runId);
      return r ? { delivery: r, attempts: attempts.filter((a) => a.runId === runId) } : null;
    },
    async redeliver(runId) {
      const r = rows.get(runId);
      if (!r) return null;
      if (r.token) return "locked";
      Object.assign(r, { state: "pending", dueInMs: 0, seriesStart: r.attemptsMade });
      return r;
    },
    async reportStates(runIds, report) {
      const untold = runIds.flatMap((id) => {
        const r = rows.get(id);
        return r && r.reported !== r.state ? [{ runId: id, state: r.state }] : [];
      });
      if (untold.length === 0) return [];
      const told = await report(untold);
      for (const t of untold) if (told.includes(t.runId)) rows.get(t.runId)!.reported = t.state;
      return told;
    },
    async listUnreported(limit) {
      return [...rows.values()].filter((r) => r.reported !== r.state && r.token === null).slice(0, limit).map((r) => r.runId);
    },
  };
  /** Makes every pending delivery due now, as time passing would. */
  const advance = () => rows.forEach((r) => r.state === "pending" && (r.dueInMs = 0));
  return { store, rows, attempts, advance };
}

const secrets: SecretStore = {
  getOrCreate: async (projectId, fresh) => ({ projectId, secret: fresh(), previousSecret: null, previousExpiresAt: null }),
  rotate: async (projectId, next) => ({ projectId, secret: next, previousSecret: null, previousExpiresAt: null }),
};

function setup(
  answers: SendResult[],
  over: { schedule?: number[]; maxConcurrency?: number; runs?: Partial<RunSource>; now?: () => Date; attemptBeforeRecord?: boolean } = {},
) {
  const mem = memoryStore();
  const sent: WebhookRequest[] = [];
  const told: Array<[string, DeliveryState]> = [];
  const input: DeliveryInput = {
    runId: "5d0c0a8e-8c1f-4a57-9a43-6a4f1f4f2b10",
    project: "dev",
    app: "echo",
    webhookUrl: "https://hooks.example/x",
    status: "succeeded",
    statusCode: 200,
    contentType: "text/plain",
    body: Buffer.from("hi"),
    bodyTruncated: false,
    errorCode: "",
    errorMessage: "",
    traceparent: "",
  };
  const runs: RunSource = {
    getDeliveryInput: async (id) => (id === input.runId ? input : null),
    updateWebhookStates: async (states) => {
      for (const { runId, state } of states) told.push([runId, state]);
      return states.map((t) => t.runId);
    },
    ...over.runs,
  };
  let i = 0;
  const rowsDuringSend: boolean[] = [];
  const core = createNotifierCore({
    store: mem.store,
    secrets,
    runs,
    sender: {
      send: async (req) => {
        sent.push(req);
        // What is recorded while the POST is in flight.
        rowsDuringSend.push(mem.rows.has(input.runId));
        return answers[Math.min(i++, answers.length - 1)]!;
      },
    },
    log: createLogger("test", "silent"),
    payload: { maxInlineBytes: 1024, publicUrl: "http://x", resultUrlKey: Buffer.alloc(32), resultUrlTtlSeconds: 60 },
    retryScheduleSeconds: over.schedule ?? [0, 5, 300],
    attemptTimeoutMs: 1_000,
    rpcTimeoutMs: 1_000,
    maxConcurrency: over.maxConcurrency ?? 10,
    secretOverlapSeconds: 60,
    random: () => 0.5,
    ...(over.now ? { now: over.now } : {}),
    ...(over.attemptBeforeRecord ? { attemptBeforeRecord: true } : {}),
  });
  return { core, mem, sent, told, input, rowsDuringSend };
}

/** A delivery input for `runId` (the event carries it). */
/** Holds every call of a store's write `method` until the returned release is called. */
function holdWrites(store: DeliveryStore, method: "finishAttempt" | "createAttempted"): () => void {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const write = store[method].bind(store) as (...args: unknown[]) => Promise<unknown>;
  (store as unknown as Record<string, unknown>)[method] = async (...args: unknown[]) => (await gate, write(...args));
  return release;
}

function inputOf(runId: string): DeliveryInput {
  return {
    runId,
    project: "dev",
    app: "echo",
    webhookUrl: "https://hooks.example/x",
    status: "succeeded",
    statusCode: 200,
    contentType: "text/plain",
    body: Buffer.from("hi"),
    bodyTruncated: false,
    errorCode: "",
    errorMessage: "",
    traceparent: "",
  };
}

const http = (statusCode: number, retryAfter: string | null = null): SendResult => ({ kind: "response", statusCode, retryAfter, excerpt: "" });

async function runOnce(core: ReturnType<typeof setup>["core"]) {
  const n = await core.pollOnce();
  await core.drain();
  return n;
}

describe("notifier core", () => {
  it("delivers on a 2xx and tells the scheduler once: delivered", async () => {
    const { core, mem, sent, told, input } = setup([http(204)]);
    expect((await core.acceptFinished({ runId: input.runId, project: "dev" })).result).toBe("accepted");
    // The first attempt starts with the accept (its row is made leased): the poll finds nothing.
    expect(await runOnce(core)).toBe(0);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.headers["webhook-id"]).toBe(`msg_${input.runId}`);
    expect(mem.rows.get(input.runId)).toMatchObject({ state: "delivered", attemptsMade: 1 });
    expect(told).toEqual([[input.runId, "delivered"]]);
  });

  it("attemptBeforeRecord: the first attempt goes before the record, and one write records the delivery with it", async () => {
    const { core, mem, sent, told, input, rowsDuringSend } = setup([http(204)], { attemptBeforeRecord: true });
    const accepted = await core.acceptFinished({ runId: input.runId, project: "dev", input });
    expect(accepted.result).toBe("accepted");
    const recorded = accepted.result === "accepted" ? accepted.recorded : undefined;
    expect(recorded).toBeInstanceOf(Promise);
    await recorded;
    // Nothing was written while the POST was in flight; then the row and its attempt at once.
    expect(rowsDuringSend).toEqual([false]);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.headers["webhook-id"]).toBe(`msg_${input.runId}`);
    expect(mem.rows.get(input.runId)).toMatchObject({ state: "delivered", attemptsMade: 1, token: null });
    expect(mem.attempts).toMatchObject([{ runId: input.runId, attempt: 1, statusCode: 204 }]);
    await core.drain();
    expect(told).toEqual([[input.runId, "delivered"]]);
    // The same event offered again (its ack was lost): recorded first, nothing sent again.
    const again = await core.acceptFinished({ runId: input.runId, project: "dev", input, repeated: true });
    expect(again.result === "accepted" && again.recorded).toBeFalsy();
    expect(await runOnce(core)).toBe(0);
    expect(sent).toHaveLength(1);
  });

  it("attemptBeforeRecord: a failed first attempt is recorded pending with its retry due; a repeated event takes the record path", async () => {
    const { core, mem, sent, input, rowsDuringSend } = setup([http(500), http(200)], { attemptBeforeRecord: true });
    const accepted = await core.acceptFinished({ runId: input.runId, project: "dev", input });
    await (accepted.result === "accepted" ? accepted.recorded : undefined);
    expect(mem.rows.get(input.runId)).toMatchObject({ state: "pending", attemptsMade: 1, dueInMs: 5_000 });
    mem.advance();
    expect(await runOnce(core)).toBe(1);
    expect(mem.rows.get(input.runId)).toMatchObject({ state: "delivered", attemptsMade: 2 });
    expect(sent).toHaveLength(2);
    // A repeated offer of a new run records before it sends.
    const other = inputOf("7f1d3c52-4b7e-4f0a-8a55-0f9d6b1e2c33");
    const repeated = await core.acceptFinished({ runId: other.runId, project: "dev", input: other, repeated: true });
    expect(repeated.result === "accepted" && repeated.recorded).toBeFalsy();
    await core.drain();
    expect(rowsDuringSend.length).toBe(3);
    expect(mem.rows.get(other.runId)).toMatchObject({ state: "delivered", attemptsMade: 1 });
  });

  it("attemptBeforeRecord: when the record cannot be written, the event is not acked (recorded rejects)", async () => {
    const { core, mem, input } = setup([http(204)], { attemptBeforeRecord: true });
    mem.store.createAttempted = async () => {
      throw new LonghaulError("unavailable", "postgres is down");
    };
    const accepted = await core.acceptFinished({ runId: input.runId, project: "dev", input });
    await expect(accepted.result === "accepted" ? accepted.recorded : undefined).rejects.toMatchObject({ code: "unavailable" });
  });

  it("schedules retries by the schedule, then fails after the last attempt", async () => {
    const { core, mem, told, input } = setup([http(500)], { schedule: [0, 5, 300] });
    await core.acceptFinished({ runId: input.runId, project: "dev" });
    await runOnce(core);
    expect(mem.rows.get(input.runId)).toMatchObject({ state: "pending", dueInMs: 5_000, lastError: "HTTP 500" });
    mem.advance();
    await runOnce(core);
    expect(mem.rows.get(input.runId)).toMatchObject({ state: "pending", dueInMs: 300_000 });
    mem.advance();
    await runOnce(core);
    expect(mem.rows.get(input.runId)).toMatchObject({ state: "failed", attemptsMade: 3, dueInMs: null });
    expect(told.at(-1)).toEqual([input.runId, "failed"]);
  });

  it("waits for a Retry-After later than the schedule", async () => {
    const { core, mem, input } = setup([http(429, "60")]);
    await core.acceptFinished({ runId: input.runId, project: "dev" });
    await runOnce(core);
    expect(mem.rows.get(input.runId)?.dueInMs).toBe(60_000);
  });

  it("fails at once on a refused target, a 3xx, a 410 or another 4xx", async () => {
    for (const answer of [{ kind: "refused", message: "private" } as const, http(301), http(410), http(422)]) {
      const { core, mem, input } = setup([answer]);
      await core.acceptFinished({ runId: input.runId, project: "dev" });
      await runOnce(core);
      expect(mem.rows.get(input.runId)).toMatchObject({ state: "failed", attemptsMade: 1 });
    }
  });

  it("starts a new retry series on redelivery", async () => {
    const { core, mem, input } = setup([http(500)], { schedule: [0, 5] });
    await core.acceptFinished({ runId: input.runId, project: "dev" });
    await runOnce(core);
    mem.advance();
    await runOnce(core);
    expect(mem.rows.get(input.runId)).toMatchObject({ state: "failed", attemptsMade: 2 });
    await core.redeliver("dev", input.runId);
    await core.drain();
    // Attempt 3 is the first of the new series: its failure is retried, not final.
    expect(mem.rows.get(input.runId)).toMatchObject({ state: "pending", attemptsMade: 3, seriesStart: 2, dueInMs: 5_000 });
  });

  it("takes no more attempts at once than its concurrency", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // The first attempt is held at the scheduler call until the gate opens.
    const { core, mem, input } = setup([http(200)], {
      maxConcurrency: 1,
      runs: { getDeliveryInput: async () => (await gate, null) },
    });
    await mem.store.create({ runId: input.runId, projectId: "dev", webhookId: "msg_a", url: "https://a/", firstAttemptInMs: 0 });
    await mem.store.create({ runId: "other", projectId: "dev", webhookId: "msg_b", url: "https://b/", firstAttemptInMs: 0 });
    expect(await core.pollOnce()).toBe(1);
    expect(await core.pollOnce()).toBe(0);
    await core.deliverNow("other");
    expect(core.inFlightCount()).toBe(1);
    release();
    await core.drain();
    expect(await core.pollOnce()).toBe(1);
    await core.drain();
    expect(core.inFlightCount()).toBe(0);
  });

  it("starts no more first attempts than its concurrency; the rest wait for the poller", async () => {
    const { core, mem, sent } = setup([http(200)], { maxConcurrency: 1, runs: { getDeliveryInput: async (id) => inputOf(id) } });
    const release = holdWrites(mem.store, "finishAttempt");
    const event = (runId: string) => ({
      runId,
      project: "dev",
      input: { ...inputOf(runId), webhookUrl: `https://hooks.example/${runId}` },
    });
    await core.acceptFinished(event("a"));
    await core.acceptFinished(event("b"));
    expect(core.inFlightCount()).toBe(1);
    expect(mem.rows.get("b")!.token).toBeNull(); // recorded, not leased
    release();
    await core.drain();
    expect(await runOnce(core)).toBe(1);
    expect(sent.map((r) => r.url)).toEqual(["https://hooks.example/a", "https://hooks.example/b"]);
  });

  it("redelivers once its own attempt in flight has ended (its record may wait for a batch)", async () => {
    const { core, mem, sent, input } = setup([http(200)]);
    const release = holdWrites(mem.store, "finishAttempt");
    await core.acceptFinished({ runId: input.runId, project: "dev" });
    await new Promise((r) => setTimeout(r, 10)); // the POST is sent, its record waits
    expect(sent).toHaveLength(1);
    const again = core.redeliver("dev", input.runId);
    release();
    await expect(again).resolves.toMatchObject({ delivery: { runId: input.runId } });
    await core.drain();
    expect(sent).toHaveLength(2);
  });

  /** A first attempt sent (attemptBeforeRecord) whose record is held until `release`. */
  async function firstAttemptUnrecorded() {
    const t = setup([http(200)], { attemptBeforeRecord: true });
    const release = holdWrites(t.mem.store, "createAttempted");
    await t.core.acceptFinished({ runId: t.input.runId, project: "dev", input: t.input });
    await new Promise((r) => setTimeout(r, 10)); // the POST is sent; nothing is recorded yet
    expect(t.sent).toHaveLength(1);
    expect(t.mem.rows.has(t.input.runId)).toBe(false);
    return { ...t, release };
  }

  it("attemptBeforeRecord: a redelivery while the first attempt is out before its record waits for it, not 'no webhook delivery'", async () => {
    const { core, sent, input, release } = await firstAttemptUnrecorded();
    const again = core.redeliver("dev", input.runId);
    release();
    await expect(again).resolves.toMatchObject({ delivery: { runId: input.runId } });
    await core.drain();
    expect(sent).toHaveLength(2);
  });

  it("attemptBeforeRecord: a look-up while the first attempt is out before its record waits for it, not 'no webhook delivery'", async () => {
    const { core, input, release } = await firstAttemptUnrecorded();
    const listed = core.listDeliveries("dev", input.runId);
    release();
    await expect(listed).resolves.toMatchObject({ delivery: { runId: input.runId, state: "delivered" } });
    await expect(core.listDeliveries("other", input.runId)).rejects.toMatchObject({ code: "not_found" });
    await core.drain();
  });

  it("a finished run with a webhook whose delivery another notifier has not recorded yet: redelivery is 409 with Retry-After, not 404", async () => {
    const finished = { finishedAt: new Date() };
    const { core, input } = setup([http(200)], { runs: { getDeliveryInput: async (id) => ({ ...inputOf(id), ...finished }) } });
    await expect(core.redeliver("dev", input.runId)).rejects.toMatchObject({ code: "conflict", retryAfterSeconds: 1 });
    // Another project's run, or one without a webhook, or not finished: no delivery.
    await expect(core.redeliver("other", input.runId)).rejects.toMatchObject({ code: "not_found" });
    const plain = setup([http(200)], { runs: { getDeliveryInput: async (id) => ({ ...inputOf(id), webhookUrl: "", ...finished }) } });
    await expect(plain.core.redeliver("dev", input.runId)).rejects.toMatchObject({ code: "not_found" });
    const running = setup([http(200)], { runs: { getDeliveryInput: async (id) => inputOf(id) } });
    await expect(running.core.redeliver("dev", input.runId)).rejects.toMatchObject({ code: "not_found" });
  });

  it("tells the scheduler many states in one report, and a run it no longer has counts as told", async () => {
    let down = false;
    const calls: string[][] = [];
    let clock = Date.now();
    const { core, mem } = setup([http(200)], {
      now: () => new Date(clock),
      runs: {
        updateWebhookStates: async (states) => {
          calls.push(states.map((s) => s.runId));
          if (down) throw new LonghaulError("unavailable", "scheduler down");
          return states.map((s) => s.runId); // "gone" is told too: the adapter counts not_found as told
        },
      },
    });
    for (const runId of ["gone", "a", "b"]) {
      await mem.store.create({ runId, projectId: "dev", webhookId: `msg_${runId}`, url: "https://x/", firstAttemptInMs: 60_000 });
    }
    await core.pollOnce();
    expect(calls).toEqual([["gone", "a", "b"]]);
    expect([...mem.rows.values()].every((r) => r.reported === "pending")).toBe(true);

    mem.rows.get("a")!.reported = null;
    mem.rows.get("b")!.reported = null;
    down = true;
    calls.length = 0;
    await core.pollOnce();
    expect(calls).toHaveLength(0); // the sweep never runs at every poll
    clock += 1_000;
    await core.pollOnce();
    expect(calls).toHaveLength(0); // every report worked: the sweep waits 30 s
    clock += 29_000;
    await core.pollOnce();
    expect(calls).toEqual([["a", "b"]]);
    expect(mem.rows.get("a")!.reported).toBeNull(); // not told: tried again by a later sweep
    down = false;
    clock += 1_000; // a report failed: once a second again
    await core.pollOnce();
    expect(mem.rows.get("a")!.reported).toBe("pending");
  });
});
