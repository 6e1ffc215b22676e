import { CompiledQuery, type Kysely } from "kysely";
import { groupCommit, preparedStatement } from "@longhaul/shared/db";
import type { EndedRun, RunRecord } from "../../core/model.js";
import type { AttemptResult } from "../../core/ports.js";
import { runColumns, type Db } from "./run-columns.js";
import type { SchedulerDb } from "./schema.js";

/**
 * The hot path's writes as group commits (shared/db group-commit): concurrent
 * submits, claims and successful completions each share one statement and
 * one commit. Every statement here is a single statement, so a batch is
 * atomic without a transaction; each caller gets its own row's answer.
 */

/** Most callers in one statement: large enough to absorb a burst, small enough for a quick statement. */
const MAX_BATCH = 200;

/** A new run's row, as insertRuns writes it. */
export interface NewRunRow {
  id: string;
  project_id: string;
  app: string;
  mode: "async" | "sync";
  /**
   * dispatched_at is the insert's time for a dispatched or running run; a
   * running one is started for `owner` (a handoff: the submit is its claim).
   */
  status: "queued" | "dispatched" | "running";
  method: string;
  path: string;
  query: string;
  upstream_url: string;
  /** JSON text. */
  request_headers: string;
  request_body: Buffer;
  webhook_url: string | null;
  priority: number;
  timeout_seconds: number;
  max_attempts: number;
  idempotency_key: string | null;
  retry_of: string | null;
  not_before: Date | null;
  expires_at: Date | null;
  traceparent: string;
  tracestate: string;
  /** JSON text. */
  labels: string;
  /** The invoker a running run is started for; null otherwise. */
  owner: string | null;
  /** The owner's lease on a running run; 0 otherwise. */
  lease_seconds: number;
  /** The owner's Handoff stream a running run is sent on; null otherwise. */
  handoff_stream: string | null;
}

/** Each column of a new run, with its array type for unnest. */
const NEW_RUN_COLUMNS: [Exclude<keyof NewRunRow, "lease_seconds" | "handoff_stream">, string][] = [
  ["id", "uuid"], ["project_id", "text"], ["app", "text"], ["mode", "text"], ["status", "text"],
  ["method", "text"], ["path", "text"], ["query", "text"], ["upstream_url", "text"], ["request_headers", "jsonb"],
  ["request_body", "bytea"], ["webhook_url", "text"], ["priority", "int"], ["timeout_seconds", "int"],
  ["max_attempts", "int"], ["idempotency_key", "text"], ["retry_of", "uuid"], ["not_before", "timestamptz"],
  ["traceparent", "text"], ["tracestate", "text"], ["labels", "jsonb"], ["expires_at", "timestamptz"],
  ["owner", "text"],
];
const UNNESTED: [keyof NewRunRow, string][] = [...NEW_RUN_COLUMNS, ["lease_seconds", "int"], ["handoff_stream", "uuid"]];

/**
 * The insert of new runs from `source`, a relation `r` with a column per
 * entry of UNNESTED; its text fixed (no query building per submit: kysely's
 * was a tenth of the scheduler's CPU per run). A run inserted running (a
 * handoff) gets its owner's lease, its attempt's record and its owner's
 * session row in the same statement, as a claim would give it (CLAIM_RUNS).
 */
const insertRunsFrom = (source: string) => `
  with r as (
    ${source}
  ), inserted as (
    insert into runs (${NEW_RUN_COLUMNS.map(([c]) => c).join(", ")}, dispatched_at, lease_expires_at, started_at)
    select ${NEW_RUN_COLUMNS.map(([c]) => `r.${c}`).join(", ")},
      case when r.status in ('dispatched', 'running') then now() end,
      case when r.status = 'running' then now() + make_interval(secs => r.lease_seconds) end,
      case when r.status = 'running' then now() end
    from r
    on conflict (id) do nothing
    returning id, owner, lease_expires_at
  ), opened as (
    insert into run_attempts (run_id, attempt, invoker_id, handoff_stream)
    select i.id, 1, i.owner, r.handoff_stream from inserted i join r on r.id = i.id where i.owner is not null
  ), session as (
    insert into invoker_sessions (invoker_id, lease_expires_at)
    select distinct on (owner) owner, lease_expires_at from inserted where owner is not null
    on conflict (invoker_id) do nothing
  )
  select id from inserted`;

/** Any number of new runs in one statement: a column of values per array. */
const INSERT_RUNS = preparedStatement(
  "lh_insert_runs",
  insertRunsFrom(`select * from unnest(${UNNESTED.map(([, t], i) => `$${i + 1}::${t}[]`).join(", ")})
      as r(${UNNESTED.map(([c]) => c).join(", ")})`),
);

/**
 * One new run, a plain parameter per column: what a submit that shares no
 * commit sends (most of them below a few hundred a second). Against the
 * same run as one-element arrays, Postgres spends ~25 % less on it and pg
 * ~40 % less encoding it (tests/bench/README.md, "Nineteenth pass").
 */
const INSERT_RUN = preparedStatement("lh_insert_run", insertRunsFrom(`select ${UNNESTED.map(([c, t], i) => `$${i + 1}::${t} as ${c}`).join(", ")}`));

/** Inserts runs in one statement; the ids inserted (a run whose id existed is not). */
export async function insertRuns(db: Db, rows: readonly NewRunRow[]): Promise<Set<string>> {
  const one = rows.length === 1 ? rows[0]! : undefined;
  const query = one
    ? CompiledQuery.raw(INSERT_RUN, UNNESTED.map(([c]) => one[c]))
    : CompiledQuery.raw(INSERT_RUNS, UNNESTED.map(([c]) => rows.map((r) => r[c])));
  const { rows: inserted } = await db.executeQuery<{ id: string }>(query);
  return new Set(inserted.map((r) => r.id));
}

/**
 * A submit waits in the window only when it will share it with at least this
 * many others on average: from 500 submits/s with the 4-ms default. Below
 * that the window mostly held its submit alone: at 250/s it took accept→app
 * p50 from ~3 to ~8 ms (tests/bench/README.md, "Fifteenth pass"), while
 * submits that come during a commit share the next one anyway.
 */
const SUBMIT_WINDOW_CALLERS = 2;

/**
 * Inserts runs, concurrent submits in one statement; answers per row whether
 * it was new. `windowMs` (SCHEDULER_SUBMIT_WINDOW_MS): how long a submit waits
 * for others to share its commit, only when another came within as long
 * before it and the recent submits come often enough to fill it
 * (SUBMIT_WINDOW_CALLERS). 0: never.
 */
export function batchedInsert(db: Kysely<SchedulerDb>, windowMs = 0) {
  return groupCommit<NewRunRow, boolean>(
    async (rows) => {
      const ids = await insertRuns(db, rows);
      return rows.map((r) => ids.has(r.id));
    },
    { maxBatch: MAX_BATCH, windowMs, windowWhenBusy: true, windowCallers: SUBMIT_WINDOW_CALLERS },
  );
}

/** The columns of a run returned, qualified (a join would make bare names ambiguous). */
const RUN_RETURNING = runColumns.map((c) => `runs.${c}`).join(", ");

/** Claims (batchedClaim), the text fixed. */
const CLAIM_RUNS = preparedStatement("lh_claim_runs", `
  with wanted as (
    select * from unnest($1::uuid[], $2::int[], $3::text[], $4::int[]) as w(id, attempt, invoker, lease)
  ), claimed as (
    update runs set
      status = 'running',
      owner = w.invoker,
      lease_expires_at = now() + make_interval(secs => w.lease),
      started_at = coalesce(runs.started_at, now())
    from wanted w
    where runs.id = w.id and runs.attempt = w.attempt
      and (runs.status = 'dispatched' or (runs.status = 'running' and runs.owner = w.invoker))
      -- Past its own start deadline a run never starts (a re-claim of a started one is not a start).
      and (runs.expires_at is null or runs.expires_at > now() or runs.status = 'running')
    returning ${RUN_RETURNING}
  ), session as (
    insert into invoker_sessions (invoker_id, lease_expires_at)
    select distinct on (w.invoker) w.invoker, now() + make_interval(secs => w.lease)
    from wanted w where w.invoker in (select owner from claimed)
    on conflict (invoker_id) do nothing
  ), opened as (
    insert into run_attempts (run_id, attempt, invoker_id)
    select id, attempt, owner from claimed
    on conflict (run_id, attempt) do nothing
  )
  select * from claimed`);

/**
 * What a success's end reads back: the run as EndedRun has it, less the
 * answer the statement just wrote (the caller has it; the attempt record
 * takes its status code from here). Not the request, the largest columns
 * (bytea and jsonb, parsed for nothing), nor the times.
 */
const SUCCEEDED_COLUMNS = ["id", "project_id", "app", "status", "attempt", "webhook_url", "labels", "traceparent", "tracestate", "status_code"] as const;
const SUCCEEDED_RETURNING = SUCCEEDED_COLUMNS.map((c) => `runs.${c}`).join(", ");

/** Successful completions (batchedSuccess), the text fixed. */
const END_SUCCEEDED = preparedStatement("lh_end_succeeded", `
  with done as (
    select * from unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::jsonb[], $6::bytea[], $7::bool[])
      as d(id, attempt, owner, status_code, headers, body, truncated)
  ), ended as (
    update runs set
      status = 'succeeded',
      finished_at = now(),
      owner = null,
      lease_expires_at = null,
      status_code = d.status_code,
      response_headers = d.headers,
      response_body = d.body,
      response_truncated = d.truncated,
      error_code = null,
      error_message = null,
      webhook_state = case when runs.webhook_url is null then 'none' else 'pending' end
    from done d
    where runs.id = d.id and runs.attempt = d.attempt and runs.status = 'running' and runs.owner = d.owner
    returning ${SUCCEEDED_RETURNING}
  ), attempts as (
    update run_attempts set finished_at = now(), status_code = e.status_code, error_code = null, error_message = null
    from ended e
    where run_attempts.run_id = e.id and run_attempts.attempt = e.attempt
  )
  select e.*, (select a.max_concurrency from apps a where a.project_id = e.project_id and a.name = e.app) as app_max_concurrency
  from ended e`);

export interface ClaimInput {
  runId: string;
  attempt: number;
  invokerId: string;
  leaseSeconds: number;
}

/**
 * Makes invokers the owners of dispatched attempts, with a lease, and opens
 * each attempt's record, in one statement for the batch. The same invoker
 * claiming the same attempt again gets it again (its first answer may have
 * missed the deadline, and the dispatch came back): claims are idempotent per
 * invoker. Undefined for an attempt that is not claimable. When two invokers
 * claim the same attempt in one batch, Postgres updates the row once: one of
 * them gets it.
 *
 * Every owner gets a session row, so a lost invoker's runs are found from it
 * (maintenance-store expiredLeases). An existing row is left alone (no row
 * lock shared by an invoker's concurrent claims): the run's own lease covers
 * the call until the invoker's next heartbeat renews the session.
 */
export function batchedClaim(db: Kysely<SchedulerDb>) {
  return groupCommit<ClaimInput, RunRecord | undefined>(
    async (items) => {
      const { rows } = await db.executeQuery<RunRecord>(
        CompiledQuery.raw(CLAIM_RUNS, [
          items.map((i) => i.runId),
          items.map((i) => i.attempt),
          items.map((i) => i.invokerId),
          items.map((i) => i.leaseSeconds),
        ]),
      );
      const byKey = new Map(rows.map((r) => [`${r.id}:${r.attempt}:${r.owner}`, r]));
      return items.map((i) => byKey.get(`${i.runId}:${i.attempt}:${i.invokerId}`));
    },
    { maxBatch: MAX_BATCH },
  );
}

export interface SuccessInput {
  runId: string;
  attempt: number;
  owner: string;
  result: AttemptResult;
}

/** The run as ended, and whether its app has a concurrency limit (a slot is free). */
export type Succeeded = { run: EndedRun; limited: boolean };

/**
 * A successful completion opens a window (SCHEDULER_END_WINDOW_MS) when
 * another came within this long before it: from 10 completions a second
 * up. Evenly paced runs come further apart than any window short enough
 * for an accept (the submit's is 4 ms): at 150 runs/s, 6.7 ms. The end of
 * a run can wait longer (the app has answered; only its state, webhook and
 * the invoker's answer wait), so ends share commits at every busy rate, not
 * only above 250 runs/s. A lone completion on a quiet system is written at once.
 */
const END_BUSY_WITHIN_MS = 100;

/**
 * A window of ends that holds fewer than this when its length is over stays
 * open for more, up to `maxWindowMs` (SCHEDULER_END_WINDOW_MAX_MS). Each
 * commit of ends is followed by the invokers' answers, a `run.finished`
 * publish and the notifier's wake-up and webhook writes, so the batch's size
 * sets what all of them cost: at 184 runs/s a fixed 20-ms window holds ~3.7
 * ends (tests/bench/README.md, "Seventeenth pass").
 */
const END_FILL_CALLERS = 8;

/**
 * Ends attempts that succeeded (the app answered 2xx: nothing in the app's
 * policy can change that outcome, so no read and no lock first), run and
 * attempt record in one statement for the whole batch. `windowMs`
 * (SCHEDULER_END_WINDOW_MS): how long a completion waits for others to share
 * its commit, when another came within END_BUSY_WITHIN_MS before it;
 * `maxWindowMs` (SCHEDULER_END_WINDOW_MAX_MS): how long in all while the
 * window holds fewer than END_FILL_CALLERS. Undefined for an attempt no
 * longer the owner's (late, cancelled, reassigned).
 */
export function batchedSuccess(db: Kysely<SchedulerDb>, windowMs = 0, maxWindowMs = windowMs) {
  type Row = Pick<EndedRun, (typeof SUCCEEDED_COLUMNS)[number]> & { app_max_concurrency: number | null };
  return groupCommit<SuccessInput, Succeeded | undefined>(
    async (items) => {
      const bodies = items.map((i) => i.result.body ?? Buffer.alloc(0));
      const { rows } = await db.executeQuery<Row>(
        CompiledQuery.raw(END_SUCCEEDED, [
          items.map((i) => i.runId),
          items.map((i) => i.attempt),
          items.map((i) => i.owner),
          items.map((i) => i.result.statusCode),
          items.map((i) => JSON.stringify(i.result.headers)),
          bodies,
          items.map((i) => i.result.bodyTruncated),
        ]),
      );
      const byKey = new Map(rows.map((r) => [`${r.id}:${r.attempt}`, r]));
      return items.map((i, n) => {
        const key = `${i.runId}:${i.attempt}`;
        const row = byKey.get(key);
        // A completion sent twice in one batch ends the run once: the second is late.
        byKey.delete(key);
        if (!row) return undefined;
        const { app_max_concurrency, ...ended } = row;
        // The answer as the statement wrote it.
        const run: EndedRun = {
          ...ended,
          response_headers: i.result.headers,
          response_body: bodies[n] ?? null,
          response_truncated: i.result.bodyTruncated,
          error_code: null,
          error_message: null,
        };
        return { run, limited: (app_max_concurrency ?? 0) > 0 };
      });
    },
    {
      maxBatch: MAX_BATCH,
      windowMs,
      windowWhenBusy: true,
      busyWithinMs: END_BUSY_WITHIN_MS,
      fillCallers: END_FILL_CALLERS,
      fillMaxMs: maxWindowMs,
    },
  );
}

/** How long a webhook's state waits for others to share its commit: nobody waits on it in a hurry. */
const WEBHOOK_STATE_WINDOW_MS = 50;

/** Webhook states (batchedWebhookState), the text fixed. */
const SET_WEBHOOK_STATES = preparedStatement("lh_set_webhook_states", `
  update runs set
    webhook_state = s.state,
    webhook_taken_at = coalesce(runs.webhook_taken_at, now()),
    webhook_settled_at = case when s.state in ('delivered', 'failed') then now() else null end
  from unnest($1::uuid[], $2::text[]) as s(id, state)
  where runs.id = s.id and runs.webhook_url is not null
  returning runs.id, runs.project_id`);

/**
 * Sets webhooks' states as the notifier tells them, the states told within a
 * short window in one statement: the first tell marks the webhook taken (the
 * reconciler stops republishing it), a delivered or failed one settled (the
 * overview counts it in that interval). When one run's state is told twice
 * in a batch the later one stands. Answers the run's project, or undefined
 * when it has no webhook.
 */
export function batchedWebhookState(db: Kysely<SchedulerDb>) {
  return groupCommit<{ runId: string; state: string }, string | undefined>(
    async (items) => {
      const latest = new Map(items.map((i) => [i.runId, i.state]));
      const { rows } = await db.executeQuery<{ id: string; project_id: string }>(
        CompiledQuery.raw(SET_WEBHOOK_STATES, [[...latest.keys()], [...latest.values()]]),
      );
      const project = new Map(rows.map((r) => [r.id, r.project_id]));
      return items.map((i) => project.get(i.runId));
    },
    { maxBatch: MAX_BATCH, windowMs: WEBHOOK_STATE_WINDOW_MS },
  );
}
