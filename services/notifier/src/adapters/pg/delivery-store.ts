import { executePrepared, groupCommit, sql } from "@longhaul/shared/db";
import type { Kysely, Selectable } from "kysely";
import type { AttemptOutcome, Delivery, DeliveryAttempt, DeliveryState, DeliveryStore } from "../../core/ports.js";
import type { NotifierDatabase, WebhookAttemptsTable, WebhookDeliveriesTable } from "./schema.js";

type DeliveryRow = Selectable<WebhookDeliveriesTable>;

function toDelivery(row: DeliveryRow): Delivery {
  return {
    runId: row.run_id,
    projectId: row.project_id,
    webhookId: row.webhook_id,
    url: row.url,
    state: row.state,
    attemptsMade: row.attempts_made,
    seriesStart: row.series_start,
    nextAttemptAt: row.next_attempt_at,
    lastError: row.last_error,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toAttempt(row: Selectable<WebhookAttemptsTable>): DeliveryAttempt {
  return {
    runId: row.run_id,
    attempt: row.attempt,
    startedAt: row.started_at,
    durationMs: row.duration_ms,
    statusCode: row.status_code,
    error: row.error,
    responseExcerpt: row.response_excerpt,
  };
}

/** Milliseconds as a Postgres interval, so that every time is the database's own clock. */
const ms = (n: number) => sql`make_interval(secs => ${n / 1000})`;

/** How long a new delivery's write waits for others to share its statement: its first POST waits as much. */
const CREATE_WINDOW_MS = 5;
/**
 * How long an attempt's record waits for others: the POST was made already,
 * so the wait only holds the attempt's slot and the event's ack. Longer than
 * a create's, so that at a few hundred webhooks a second several records
 * share one commit (and their acks one write to NATS), not one each.
 */
const RECORD_WINDOW_MS = 20;
/** Most writes in one statement. */
const MAX_BATCH = 128;
/**
 * Statements written at once: a batch held up (a row locked by a report
 * waiting on the scheduler) must not stall the deliveries behind it.
 */
const WRITE_CONCURRENCY = 4;

type NewDelivery = Parameters<DeliveryStore["create"]>[0];
type Write =
  | { kind: "create"; d: NewDelivery; lease: { token: string; leaseMs: number } | undefined }
  | { kind: "finish"; runId: string; token: string; attempt: DeliveryAttempt | null; outcome: AttemptOutcome }
  | { kind: "attempted"; d: Omit<NewDelivery, "firstAttemptInMs">; attempt: DeliveryAttempt; outcome: AttemptOutcome };
type WriteResult = { kind: "create"; delivery: Delivery | null } | { kind: "finish" | "attempted"; kept: boolean };

/**
 * New deliveries and attempts' records of concurrent callers, in one
 * statement (one commit): the webhook path's writes are one commit per short
 * window, not one or two per webhook. Each caller is answered once
 * the statement committed.
 */
async function writeBatch(db: Kysely<NotifierDatabase>, writes: Write[]): Promise<WriteResult[]> {
  const creates = writes.flatMap((w) => (w.kind === "create" ? [w] : []));
  const finishes = writes.flatMap((w) => (w.kind === "finish" ? [w] : []));
  const attempted = writes.flatMap((w) => (w.kind === "attempted" ? [w] : []));
  const col = <T, V>(rows: T[], f: (r: T) => V) => rows.map(f);
  const { rows } = await executePrepared(db, "lh_write_deliveries", sql<{ kind: "c" | "f" | "a"; run_id: string; created_at: Date | null; next_attempt_at: Date | null }>`
    with c as (
      select * from unnest(
        ${col(creates, (w) => w.d.runId)}::uuid[], ${col(creates, (w) => w.d.projectId)}::text[],
        ${col(creates, (w) => w.d.webhookId)}::text[], ${col(creates, (w) => w.d.url)}::text[],
        ${col(creates, (w) => w.d.firstAttemptInMs)}::float8[],
        ${col(creates, (w) => w.lease?.token ?? null)}::uuid[], ${col(creates, (w) => w.lease?.leaseMs ?? null)}::float8[]
      ) as c(run_id, project_id, webhook_id, url, first_ms, token, lease_ms)
    ), ins as (
      insert into webhook_deliveries (run_id, project_id, webhook_id, url, state, next_attempt_at, locked_until, lease_token)
      select run_id, project_id, webhook_id, url, 'pending', now() + make_interval(secs => first_ms / 1000),
             now() + make_interval(secs => lease_ms / 1000), token
      from c
      -- Events are redelivered and republished: the first one wins.
      on conflict (run_id) do nothing
      returning run_id, created_at, next_attempt_at
    ), f as (
      select * from unnest(
        ${col(finishes, (w) => w.runId)}::uuid[], ${col(finishes, (w) => w.token)}::uuid[],
        ${col(finishes, (w) => w.outcome.state)}::text[], ${col(finishes, (w) => w.outcome.nextAttemptInMs)}::float8[],
        ${col(finishes, (w) => w.outcome.lastError)}::text[], ${col(finishes, (w) => w.attempt?.attempt ?? null)}::int[],
        ${col(finishes, (w) => w.attempt?.startedAt ?? null)}::timestamptz[], ${col(finishes, (w) => w.attempt?.durationMs ?? null)}::int[],
        ${col(finishes, (w) => w.attempt?.statusCode ?? null)}::int[], ${col(finishes, (w) => w.attempt?.error ?? null)}::text[],
        -- Postgres text cannot hold NUL bytes, which a binary answer may carry.
        ${col(finishes, (w) => w.attempt?.responseExcerpt?.replaceAll("\u0000", "\ufffd") ?? null)}::text[]
      ) as f(run_id, token, state, next_ms, last_error, attempt, started_at, duration_ms, status_code, error, excerpt)
    ), upd as (
      -- Only while the lease still holds: a late writer whose lease ran out writes nothing.
      update webhook_deliveries d set
        state = f.state,
        attempts_made = coalesce(f.attempt, d.attempts_made),
        next_attempt_at = now() + make_interval(secs => f.next_ms / 1000),
        locked_until = null, lease_token = null, last_error = f.last_error, updated_at = now()
      from f
      where d.run_id = f.run_id and d.lease_token = f.token
      returning d.run_id
    ), att as (
      insert into webhook_attempts (run_id, attempt, started_at, duration_ms, status_code, error, response_excerpt)
      select f.run_id, f.attempt, f.started_at, f.duration_ms, f.status_code, f.error, f.excerpt
      from f join upd on upd.run_id = f.run_id
      where f.attempt is not null
    ), a as (
      select * from unnest(
        ${col(attempted, (w) => w.d.runId)}::uuid[], ${col(attempted, (w) => w.d.projectId)}::text[],
        ${col(attempted, (w) => w.d.webhookId)}::text[], ${col(attempted, (w) => w.d.url)}::text[],
        ${col(attempted, (w) => w.outcome.state)}::text[], ${col(attempted, (w) => w.outcome.nextAttemptInMs)}::float8[],
        ${col(attempted, (w) => w.outcome.lastError)}::text[], ${col(attempted, (w) => w.attempt.attempt)}::int[],
        ${col(attempted, (w) => w.attempt.startedAt)}::timestamptz[], ${col(attempted, (w) => w.attempt.durationMs)}::int[],
        ${col(attempted, (w) => w.attempt.statusCode)}::int[], ${col(attempted, (w) => w.attempt.error)}::text[],
        ${col(attempted, (w) => w.attempt.responseExcerpt?.replaceAll("\u0000", "\ufffd") ?? null)}::text[]
      ) as a(run_id, project_id, webhook_id, url, state, next_ms, last_error, attempt, started_at, duration_ms, status_code, error, excerpt)
    ), ains as (
      -- A delivery whose first attempt was made before it was recorded: row and attempt together.
      insert into webhook_deliveries (run_id, project_id, webhook_id, url, state, attempts_made, next_attempt_at, last_error)
      select run_id, project_id, webhook_id, url, state, attempt, now() + make_interval(secs => next_ms / 1000), last_error
      from a
      on conflict (run_id) do nothing
      returning run_id
    ), aatt as (
      insert into webhook_attempts (run_id, attempt, started_at, duration_ms, status_code, error, response_excerpt)
      select a.run_id, a.attempt, a.started_at, a.duration_ms, a.status_code, a.error, a.excerpt
      from a join ains on ains.run_id = a.run_id
    )
    select 'c' as kind, run_id, created_at, next_attempt_at from ins
    union all
    select 'f', run_id, null, null from upd
    union all
    select 'a', run_id, null, null from ains`);
  const created = new Map<string, { created_at: Date | null; next_attempt_at: Date | null }>();
  const kept = new Set<string>();
  const inserted = new Set<string>();
  for (const r of rows) {
    if (r.kind === "c") created.set(r.run_id, r);
    else if (r.kind === "a") inserted.add(r.run_id);
    else kept.add(r.run_id);
  }
  return writes.map((w): WriteResult => {
    if (w.kind === "finish") return { kind: "finish", kept: kept.has(w.runId) };
    if (w.kind === "attempted") return { kind: "attempted", kept: inserted.has(w.d.runId) };
    const row = created.get(w.d.runId);
    if (!row) return { kind: "create", delivery: null };
    const at = new Date(row.created_at!);
    return {
      kind: "create",
      delivery: {
        runId: w.d.runId,
        projectId: w.d.projectId,
        webhookId: w.d.webhookId,
        url: w.d.url,
        state: "pending",
        attemptsMade: 0,
        seriesStart: 0,
        nextAttemptAt: new Date(row.next_attempt_at!),
        lastError: null,
        createdAt: at,
        updatedAt: at,
      },
    };
  });
}

/**
 * Deliveries in Postgres. Times come from the database (`now()`), so that
 * notifiers on machines with skewed clocks agree on what is due and on
 * whose lease has run out.
 */
export function createPgDeliveryStore(db: Kysely<NotifierDatabase>): DeliveryStore {
  // Group commit (@longhaul/shared/db): a batch that fails on one row's data
  // is written again row by row, so only that caller fails; any other
  // failure fails every caller of the batch.
  const batches = (windowMs: number) =>
    groupCommit<Write, WriteResult>((w) => writeBatch(db, w), { maxBatch: MAX_BATCH, windowMs, concurrency: WRITE_CONCURRENCY });
  const creates = batches(CREATE_WINDOW_MS);
  const records = batches(RECORD_WINDOW_MS);
  return {
    async create(d, lease) {
      const r = await creates({ kind: "create", d, lease });
      return r.kind === "create" ? r.delivery : null;
    },

    async claimDue(limit, leaseMs, token, runId) {
      if (limit <= 0) return [];
      // SKIP LOCKED: two notifiers polling at once take disjoint rows; the
      // lease (locked_until) then keeps the row theirs after the commit.
      const { rows } = await sql<DeliveryRow>`
        update webhook_deliveries d
        set locked_until = now() + ${ms(leaseMs)}, lease_token = ${token}, updated_at = now()
        where d.run_id in (
          select run_id from webhook_deliveries
          where state = 'pending'
            and next_attempt_at <= now()
            and (locked_until is null or locked_until < now())
            ${runId === undefined ? sql`` : sql`and run_id = ${runId}`}
          order by next_attempt_at
          limit ${limit}
          for update skip locked
        )
        returning d.*`.execute(db);
      return rows.map(toDelivery);
    },

    async finishAttempt(runId, token, attempt, outcome) {
      const r = await records({ kind: "finish", runId, token, attempt, outcome });
      return r.kind === "finish" && r.kept;
    },

    async createAttempted(d, attempt, outcome) {
      const r = await records({ kind: "attempted", d, attempt, outcome });
      return r.kind === "attempted" && r.kept;
    },

    async release(runId, token, retryInMs, lastError) {
      await db
        .updateTable("webhook_deliveries")
        .set({
          locked_until: null,
          lease_token: null,
          next_attempt_at: sql<Date>`now() + ${ms(retryInMs)}`,
          last_error: lastError.slice(0, 1_000),
          updated_at: sql<Date>`now()`,
        })
        .where("run_id", "=", runId)
        .where("lease_token", "=", token)
        .execute();
    },

    async get(runId) {
      const row = await db.selectFrom("webhook_deliveries").selectAll().where("run_id", "=", runId).executeTakeFirst();
      if (!row) return null;
      const attempts = await db
        .selectFrom("webhook_attempts")
        .selectAll()
        .where("run_id", "=", runId)
        .orderBy("attempt")
        .execute();
      return { delivery: toDelivery(row), attempts: attempts.map(toAttempt) };
    },

    async redeliver(runId) {
      const row = await db
        .updateTable("webhook_deliveries")
        .set({
          state: "pending",
          next_attempt_at: sql<Date>`now()`,
          series_start: sql<number>`attempts_made`,
          last_error: null,
          updated_at: sql<Date>`now()`,
        })
        .where("run_id", "=", runId)
        // An attempt in flight keeps its lease; redelivering under it would send twice at once.
        .where((eb) => eb.or([eb("locked_until", "is", null), eb("locked_until", "<", sql<Date>`now()`)]))
        .returningAll()
        .executeTakeFirst();
      if (row) return toDelivery(row);
      const exists = await db.selectFrom("webhook_deliveries").select("run_id").where("run_id", "=", runId).executeTakeFirst();
      return exists ? "locked" : null;
    },

    async reportStates(runIds, report) {
      if (runIds.length === 0) return [];
      return db.transaction().execute(async (trx) => {
        // The rows are locked while the scheduler is told, so that two
        // reports of one run cannot arrive in the wrong order; another
        // notifier's locked rows are skipped (it tells them).
        const { rows } = await sql<{ run_id: string; state: DeliveryState }>`
          select run_id, state from webhook_deliveries
          where run_id = any(${runIds}::uuid[]) and reported_state is distinct from state
          for update skip locked`.execute(trx);
        if (rows.length === 0) return [];
        const told = new Set(await report(rows.map((r) => ({ runId: r.run_id, state: r.state }))));
        const done = rows.filter((r) => told.has(r.run_id));
        if (done.length > 0) {
          await sql`
            update webhook_deliveries d set reported_state = t.state
            from unnest(${done.map((r) => r.run_id)}::uuid[], ${done.map((r) => r.state)}::text[]) as t(run_id, state)
            where d.run_id = t.run_id`.execute(trx);
        }
        return done.map((r) => r.run_id);
      });
    },

    async listUnreported(limit) {
      const rows = await db
        .selectFrom("webhook_deliveries")
        .select("run_id")
        .where(sql<boolean>`reported_state is distinct from state`)
        // An attempt in flight reports when it ends.
        .where(sql<boolean>`(locked_until is null or locked_until < now())`)
        .orderBy("updated_at")
        .limit(limit)
        .execute();
      return rows.map((r) => r.run_id);
    },
  };
}

/** Deliveries waiting for an attempt, for the `longhaul_webhook_deliveries_pending` gauge. */
export async function countPendingDeliveries(db: Kysely<NotifierDatabase>): Promise<number> {
  const row = await db
    .selectFrom("webhook_deliveries")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("state", "=", "pending")
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
