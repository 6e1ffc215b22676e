import { sql } from "@longhaul/shared/db";
import type { Kysely, Selectable } from "kysely";
import type { Delivery, DeliveryAttempt, DeliveryState, DeliveryStore } from "../../core/ports.js";
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

/**
 * Deliveries in Postgres. Times come from the database (`now()`), so that
 * notifiers on machines with skewed clocks agree on what is due and on
 * whose lease has run out.
 */
export function createPgDeliveryStore(db: Kysely<NotifierDatabase>): DeliveryStore {
  return {
    async create(d) {
      const inserted = await db
        .insertInto("webhook_deliveries")
        .values({
          run_id: d.runId,
          project_id: d.projectId,
          webhook_id: d.webhookId,
          url: d.url,
          state: "pending",
          next_attempt_at: sql<Date>`now() + ${ms(d.firstAttemptInMs)}`,
        })
        // Events are redelivered and republished: the first one wins.
        .onConflict((oc) => oc.column("run_id").doNothing())
        .returningAll()
        .executeTakeFirst();
      if (inserted) return { delivery: toDelivery(inserted), created: true };
      const row = await db.selectFrom("webhook_deliveries").selectAll().where("run_id", "=", d.runId).executeTakeFirstOrThrow();
      return { delivery: toDelivery(row), created: false };
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
      return db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable("webhook_deliveries")
          .set({
            state: outcome.state,
            ...(attempt ? { attempts_made: attempt.attempt } : {}),
            next_attempt_at: outcome.nextAttemptInMs === null ? null : sql<Date>`now() + ${ms(outcome.nextAttemptInMs)}`,
            locked_until: null,
            lease_token: null,
            last_error: outcome.lastError,
            updated_at: sql<Date>`now()`,
          })
          .where("run_id", "=", runId)
          .where("lease_token", "=", token)
          .executeTakeFirst();
        if (updated.numUpdatedRows === 0n) return false;
        if (attempt) {
          await trx
            .insertInto("webhook_attempts")
            .values({
              run_id: attempt.runId,
              attempt: attempt.attempt,
              started_at: attempt.startedAt,
              duration_ms: attempt.durationMs,
              status_code: attempt.statusCode,
              error: attempt.error,
              // Postgres text cannot hold NUL bytes, which a binary answer may carry.
              response_excerpt: attempt.responseExcerpt?.replaceAll("\u0000", "\ufffd") ?? null,
            })
            .execute();
        }
        return true;
      });
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

    async reportState(runId, report) {
      return db.transaction().execute(async (trx) => {
        // The row lock is held while the scheduler is told, so that two
        // reports of one run cannot arrive in the wrong order.
        const row = await trx
          .selectFrom("webhook_deliveries")
          .select(["state", "reported_state"])
          .where("run_id", "=", runId)
          .forUpdate()
          .skipLocked()
          .executeTakeFirst();
        if (!row) return "skipped" as const;
        if (row.reported_state === row.state) return "none" as const;
        await report(row.state as DeliveryState);
        await trx.updateTable("webhook_deliveries").set({ reported_state: row.state }).where("run_id", "=", runId).execute();
        return "reported" as const;
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
