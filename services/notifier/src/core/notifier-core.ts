import { LonghaulError } from "@longhaul/shared/errors";
import type { Logger } from "@longhaul/shared/logger";
import { RunAttr, SpanStatusCode, context, runContext, tracer } from "@longhaul/shared/telemetry";
import type {
  Delivery,
  DeliveryAttempt,
  DeliveryInput,
  DeliveryStore,
  NotifierMetrics,
  RunSource,
  SecretStore,
  WebhookSecrets,
  WebhookSender,
} from "./ports.js";
import { classify, nextDelayMs, parseRetryAfter, withJitter } from "./retry-policy.js";
import { newWebhookSecret, signingSecrets } from "./signing.js";
import { buildWebhookRequest, type PayloadOptions } from "./webhook-payload.js";

/** Everything the core is built from. */
export interface NotifierCoreOptions {
  store: DeliveryStore;
  secrets: SecretStore;
  runs: RunSource;
  sender: WebhookSender;
  log: Logger;
  payload: PayloadOptions;
  /** Seconds before each attempt of a series (NOTIFIER_RETRY_SCHEDULE). */
  retryScheduleSeconds: readonly number[];
  /** Bounds one POST; the lease of an attempt is derived from it. */
  attemptTimeoutMs: number;
  /** Deadline of each scheduler call; part of the lease too. */
  rpcTimeoutMs: number;
  /** Attempts run at once by this notifier. */
  maxConcurrency: number;
  /**
   * A new event's first attempt, when due now, is made before its delivery is
   * recorded, and the delivery is written with its outcome in one commit (one
   * commit per webhook, not two); the event is acked only after. Only when an
   * attempt ends well within the event's ack wait (main sets it).
   */
  attemptBeforeRecord?: boolean;
  secretOverlapSeconds: number;
  metrics?: NotifierMetrics;
  now?: () => Date;
  random?: () => number;
  newToken?: () => string;
}

/** A finished run as announced on JetStream (`run.finished`). */
export interface FinishedEvent {
  runId: string;
  project: string;
  /** What to deliver, when the event carried it: the scheduler is then not asked. */
  input?: DeliveryInput;
  /** Offered before (JetStream redelivered it, or the scheduler published it again): a delivery may exist. */
  repeated?: boolean;
}

/** What became of a `run.finished` event. */
export type AcceptResult =
  /** `recorded`: when set, the event may be acked only once it resolves (the delivery is written after its first attempt). */
  | { result: "accepted"; input: DeliveryInput; recorded?: Promise<void> }
  | { result: "no_webhook" | "run_gone"; input?: undefined };

/** Wait before retrying when the scheduler could not say what to send. */
const INPUT_UNAVAILABLE_RETRY_MS = 10_000;
const ERROR_TEXT_LIMIT = 1_000;
const REPORT_SWEEP_INTERVAL_MS = 1_000;
/** The sweep's pace while every report worked: only another notifier's leftovers (it died between a record and its report) are left to find. */
const REPORT_IDLE_SWEEP_MS = 30_000;
/** How long states to tell the scheduler are gathered before one report tells them all. */
const REPORT_WINDOW_MS = 250;
/** Most states told in one report. */
const REPORT_BATCH_MAX = 200;
/** How long a project's signing secrets are reused before they are read again. */
const SECRET_CACHE_MS = 1_000;
/** Projects whose secrets are kept at once. */
const SECRET_CACHE_MAX = 10_000;

/**
 * The notifier: turns finished runs into deliveries, runs their attempts under
 * Postgres leases (so two notifiers never send one attempt at once and a dead
 * notifier's attempt is retried), decides retries, and keeps the scheduler told
 * of each delivery's state.
 */
export function createNotifierCore(options: NotifierCoreOptions) {
  const { store, secrets, runs, sender, log } = options;
  const now = options.now ?? (() => new Date());
  const random = options.random ?? Math.random;
  const newToken = options.newToken ?? (() => crypto.randomUUID());
  const schedule = options.retryScheduleSeconds;
  // The lease outlives the longest attempt: input fetch, secret read, POST, write.
  const leaseMs = options.attemptTimeoutMs + 2 * options.rpcTimeoutMs + 30_000;
  const inFlight = new Set<Promise<void>>();
  // Set when the last poll filled every slot, so more may be due: a slot that
  // frees up then calls the poller back at once instead of at its next tick.
  let backlog = false;
  let onCapacity: (() => void) | undefined;
  let onRetryDue: ((ms: number) => void) | undefined;
  let lastSweep = 0;
  // Set by a failed report (and at start, for what a previous run left): the
  // sweep then looks once a second, else every REPORT_IDLE_SWEEP_MS.
  let reportsBehind = true;

  function track(p: Promise<void>): void {
    const tracked = p.catch((err: unknown) => log.error({ err }, "webhook attempt failed unexpectedly"));
    inFlight.add(tracked);
    void tracked.finally(() => {
      inFlight.delete(tracked);
      if (backlog) {
        backlog = false;
        onCapacity?.();
      }
    });
  }

  /**
   * Tells the scheduler the states of `runIds` it has not been told yet, in
   * one report; false when that failed (logged; the poller's sweep tries again).
   */
  async function reportNow(runIds: string[]): Promise<boolean> {
    try {
      await store.reportStates(runIds, (states) => runs.updateWebhookStates(states));
      return true;
    } catch (err) {
      log.warn({ err, runs: runIds.length }, "webhook states not reported yet");
      reportsBehind = true;
      return false;
    }
  }

  /**
   * States to tell the scheduler are gathered for REPORT_WINDOW_MS and told in
   * one report (one call, one commit here and one there per window instead of
   * per webhook). The POST is done by then: only the run's view waits.
   */
  let toReport = new Set<string>();
  let reportTimer: NodeJS.Timeout | undefined;
  const reporting = new Set<Promise<boolean>>();
  function flushReports(): Promise<boolean> {
    clearTimeout(reportTimer);
    reportTimer = undefined;
    if (toReport.size === 0) return Promise.resolve(true);
    const ids = [...toReport];
    toReport = new Set();
    const p = reportNow(ids);
    reporting.add(p);
    void p.finally(() => reporting.delete(p));
    return p;
  }
  function reportSoon(runId: string): void {
    toReport.add(runId);
    if (toReport.size >= REPORT_BATCH_MAX) void flushReports();
    else reportTimer ??= setTimeout(() => void flushReports(), REPORT_WINDOW_MS);
  }

  /**
   * Signing secrets, read once a second at most per project (a read per
   * webhook was one of its commits). A rotation here drops the entry; another
   * notifier copy signs with the previous secret for at most that second,
   * which the rotation's overlap covers for receivers that accept both.
   */
  const secretCache = new Map<string, { at: number; value: Promise<WebhookSecrets> }>();
  async function projectSecrets(projectId: string): Promise<WebhookSecrets> {
    const t = now().getTime();
    const hit = secretCache.get(projectId);
    if (hit && t - hit.at < SECRET_CACHE_MS) return hit.value;
    const value = secrets.getOrCreate(projectId, newWebhookSecret);
    secretCache.set(projectId, { at: t, value });
    value.catch(() => secretCache.delete(projectId));
    if (secretCache.size > SECRET_CACHE_MAX) secretCache.delete(secretCache.keys().next().value!);
    return value;
  }

  /** `unrecorded`: the delivery is not written yet; its first attempt's record writes it (createAttempted). */
  async function attempt(delivery: Delivery, token: string, prefetched?: DeliveryInput, unrecorded = false): Promise<void> {
    const runId = delivery.runId;
    let input;
    try {
      input = prefetched ?? (await runs.getDeliveryInput(runId));
    } catch (err) {
      log.warn({ err, run_id: runId }, "run input unavailable; delivery postponed");
      const message = err instanceof Error ? err.message : String(err);
      await store.release(runId, token, withJitter(INPUT_UNAVAILABLE_RETRY_MS, random), `scheduler: ${message}`);
      return;
    }
    if (!input) {
      // The run was deleted (retention): nothing left to send, ever.
      await store.finishAttempt(runId, token, null, { state: "failed", nextAttemptInMs: null, lastError: "run no longer exists" });
      reportSoon(runId);
      return;
    }
    // The attempt joins the run's trace (one run is one trace): under the
    // run.finished event that carried it, else (a retry from the poller)
    // under the run's stored context. Its span is the parent of the POST's,
    // and its log lines carry the run's trace id.
    const found = input;
    await context.with(runContext(found.traceparent), () =>
      tracer.startActiveSpan(
        "webhook attempt",
        {
          attributes: {
            [RunAttr.runId]: runId,
            [RunAttr.app]: found.app,
            [RunAttr.project]: found.project,
            "longhaul.webhook_attempt": delivery.attemptsMade + 1,
          },
        },
        async (span) => {
          try {
            const state = await send(delivery, token, found, unrecorded);
            span.setAttributes({ "longhaul.webhook_state": state, [RunAttr.outcome]: state });
            if (state === "failed") span.setStatus({ code: SpanStatusCode.ERROR });
          } finally {
            span.end();
          }
        },
      ),
    );
  }

  /** One POST and its record; resolves with the state it left the delivery in. */
  async function send(delivery: Delivery, token: string, input: DeliveryInput, unrecorded: boolean): Promise<Delivery["state"]> {
    const runId = delivery.runId;
    const startedAt = now();
    const keys = signingSecrets(await projectSecrets(delivery.projectId), startedAt);
    const request = buildWebhookRequest(delivery, input, keys, options.payload, startedAt);
    const result = await sender.send(request);
    const durationMs = Math.max(0, now().getTime() - startedAt.getTime());

    const number = delivery.attemptsMade + 1;
    const { verdict, reason } = classify(result);
    let outcome: { state: Delivery["state"]; nextAttemptInMs: number | null };
    if (verdict === "delivered") outcome = { state: "delivered", nextAttemptInMs: null };
    else if (verdict === "stop") outcome = { state: "failed", nextAttemptInMs: null };
    else {
      const retryAfter = result.kind === "response" ? parseRetryAfter(result.retryAfter, now()) : null;
      const delay = nextDelayMs(schedule, number - delivery.seriesStart, random, retryAfter);
      outcome = delay === null ? { state: "failed", nextAttemptInMs: null } : { state: "pending", nextAttemptInMs: delay };
    }
    const error = reason ?? (result.kind === "response" ? (result.bodyError ?? null) : null);
    const record: DeliveryAttempt = {
      runId,
      attempt: number,
      startedAt,
      durationMs,
      statusCode: result.kind === "response" ? result.statusCode : 0,
      error: error?.slice(0, ERROR_TEXT_LIMIT) ?? null,
      responseExcerpt: result.kind === "response" ? result.excerpt : null,
    };
    const kept = unrecorded
      ? await store.createAttempted(delivery, record, { ...outcome, lastError: record.error })
      : await store.finishAttempt(runId, token, record, { ...outcome, lastError: record.error });
    options.metrics?.attempt(outcome.state === "pending" ? "retrying" : outcome.state, durationMs);
    if (!kept) {
      if (unrecorded) log.warn({ run_id: runId, attempt: number }, "the run had a delivery already (a repeated event); this attempt's record is dropped");
      else log.warn({ run_id: runId, attempt: number }, "lease lost during a webhook attempt; its record is dropped");
      return outcome.state;
    }
    log.info(
      { run_id: runId, attempt: number, status_code: record.statusCode, state: outcome.state, error: record.error },
      "webhook attempt",
    );
    // Pending is told once (nothing is sent when already told), then the end.
    reportSoon(runId);
    if (outcome.nextAttemptInMs !== null) onRetryDue?.(outcome.nextAttemptInMs);
    return outcome.state;
  }

  /** This notifier's attempts in flight, by run. */
  const attemptsByRun = new Map<string, Promise<void>>();
  function startAttempts(claimed: Delivery[], token: string, prefetched?: DeliveryInput): void {
    for (const d of claimed) void startAttempt(d, token, prefetched);
  }

  /** Starts one attempt, tracked; resolves once it is recorded (`unrecorded`: see attempt). */
  function startAttempt(d: Delivery, token: string, prefetched?: DeliveryInput, unrecorded = false): Promise<void> {
    const p = attempt(d, token, prefetched, unrecorded);
    attemptsByRun.set(d.runId, p);
    void p.finally(() => attemptsByRun.get(d.runId) === p && attemptsByRun.delete(d.runId)).catch(() => undefined);
    track(p);
    return p;
  }

  /** Slots promised to deliveries being created leased, not yet in flight. */
  let reserved = 0;
  const hasRoom = () => inFlight.size + reserved < options.maxConcurrency;

  /**
   * Sends a run's due attempt now, if this notifier has room and no other
   * holds it; `input`, when just fetched, saves asking the scheduler again.
   */
  async function deliverNow(runId: string, input?: DeliveryInput): Promise<void> {
    if (!hasRoom()) return; // the poller takes it later
    const token = newToken();
    reserved++;
    let claimed: Delivery[];
    try {
      claimed = await store.claimDue(1, leaseMs, token, runId);
    } finally {
      reserved--;
    }
    startAttempts(claimed, token, input);
  }

  async function listDeliveries(projectId: string, runId: string) {
    const found = await store.get(runId);
    if (!found || found.delivery.projectId !== projectId) {
      throw new LonghaulError("not_found", "this run has no webhook delivery");
    }
    return found;
  }

  /**
   * listDeliveries, waiting for a first attempt of this notifier that is out
   * before its record (attemptBeforeRecord: a receiver that looks its webhook
   * up as it arrives, or redelivers it, comes here before the record).
   */
  async function deliveriesOf(projectId: string, runId: string) {
    try {
      return await listDeliveries(projectId, runId);
    } catch (err) {
      const local = attemptsByRun.get(runId);
      if (!local || !(err instanceof LonghaulError && err.code === "not_found")) throw err;
      await local.catch(() => undefined);
      return listDeliveries(projectId, runId);
    }
  }

  return {
    /**
     * Records the delivery of a finished run and, when this notifier has
     * room, starts its first attempt under a lease taken by the same insert.
     * Resolves once the row is committed (the event may be acked then).
     * Idempotent: a repeated event finds the row and sends only an attempt
     * that is due and unheld. Throws when the scheduler (asked only when the
     * event did not carry the input) or Postgres cannot be reached, so that
     * the event is redelivered.
     */
    async acceptFinished(event: FinishedEvent): Promise<AcceptResult> {
      const input = event.input ?? (await runs.getDeliveryInput(event.runId));
      if (!input) return { result: "run_gone" };
      if (!input.webhookUrl) return { result: "no_webhook" };
      const firstAttemptInMs = withJitter((schedule[0] ?? 0) * 1000, random);
      // A first offer, with room and a first attempt due now: the POST goes
      // first and one commit records the delivery with its outcome. Nothing
      // is written until then, so the event is acked only after (`recorded`);
      // a crash in between offers it again and the webhook is sent again,
      // under the same webhook-id (webhooks are at least once).
      if (options.attemptBeforeRecord && !event.repeated && firstAttemptInMs === 0 && hasRoom() && !attemptsByRun.has(input.runId)) {
        const at = now();
        const delivery: Delivery = {
          runId: input.runId,
          projectId: input.project,
          webhookId: `msg_${input.runId}`,
          url: input.webhookUrl,
          state: "pending",
          attemptsMade: 0,
          seriesStart: 0,
          nextAttemptAt: at,
          lastError: null,
          createdAt: at,
          updatedAt: at,
        };
        return { result: "accepted", input, recorded: startAttempt(delivery, newToken(), input, true) };
      }
      // An attempt of this run in flight here (its record may not be written
      // yet): the record path waits for it, so as not to send it again.
      await attemptsByRun.get(input.runId)?.catch(() => undefined);
      // With room and a first attempt due now, the row is made leased to this
      // notifier: its first attempt needs no claim (one commit, not two).
      const lease = hasRoom() && firstAttemptInMs === 0 ? { token: newToken(), leaseMs } : undefined;
      if (lease) reserved++;
      let created: Delivery | null;
      try {
        created = await store.create(
          { runId: input.runId, projectId: input.project, webhookId: `msg_${input.runId}`, url: input.webhookUrl, firstAttemptInMs },
          lease,
        );
      } finally {
        if (lease) reserved--;
      }
      if (created && lease) startAttempts([created], lease.token, input);
      else if (created) backlog = true; // no room: the poller takes it when a slot frees up
      else {
        // A repeated event: an attempt is sent if one is due and nobody holds it.
        void deliverNow(input.runId, input).catch((err: unknown) => log.warn({ err, run_id: input.runId }, "attempt left to the poller"));
      }
      // Not reported as pending here: the scheduler set pending itself when the
      // run ended, and the first attempt's end reports the state it leaves
      // (delivered, most often: one report per webhook, not two). A delivery
      // that waits for a slot is reported by the poller's sweep; until some
      // report arrives the scheduler republishes run.finished, which finds
      // this row and changes nothing.
      return { result: "accepted", input };
    },

    deliverNow,

    /**
     * One look for due work: leases as many due deliveries as there is room
     * for and starts their attempts; tells the scheduler states left untold.
     * Returns how many attempts it started.
     */
    async pollOnce(): Promise<number> {
      const room = options.maxConcurrency - inFlight.size;
      let started = 0;
      if (room > 0) {
        const token = newToken();
        const claimed = await store.claimDue(room, leaseMs, token);
        startAttempts(claimed, token);
        started = claimed.length;
        backlog = started === room;
      } else {
        backlog = true;
      }
      // States left untold are rare (a failed report); look for them once a
      // second while reports fail, else every 30 s (an idle notifier's
      // statements are its poll's), never at every poll.
      if (now().getTime() - lastSweep >= (reportsBehind ? REPORT_SWEEP_INTERVAL_MS : REPORT_IDLE_SWEEP_MS)) {
        lastSweep = now().getTime();
        reportsBehind = false;
        const untold = await store.listUnreported(REPORT_BATCH_MAX);
        if (untold.length > 0) await reportNow(untold);
      }
      return started;
    },

    /** Registers the one listener called when a slot frees up while due work may wait (the poller's wake). */
    onCapacity(listener: () => void): void {
      onCapacity = listener;
    },

    /** Registers the one listener told when a retry falls due in `ms` (the poller's wakeIn). */
    onRetryDue(listener: (ms: number) => void): void {
      onRetryDue = listener;
    },

    /** Attempts running now. */
    inFlightCount: () => inFlight.size,

    /** Waits for the attempts in flight (each bounded by the attempt timeout). */
    async drain(): Promise<void> {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
      await flushReports();
      await Promise.all([...reporting]);
    },

    async getSecret(projectId: string): Promise<WebhookSecrets> {
      return projectSecrets(projectId);
    },

    async rotateSecret(projectId: string): Promise<WebhookSecrets> {
      secretCache.delete(projectId);
      const rotated = await secrets.rotate(projectId, newWebhookSecret(), options.secretOverlapSeconds);
      secretCache.delete(projectId);
      return rotated;
    },

    /** A run's delivery and attempts; not_found when absent or another project's. */
    listDeliveries: deliveriesOf,

    /** Sends a delivery again now, in a new retry series; attempts keep their numbering. */
    async redeliver(projectId: string, runId: string) {
      const sentHere = attemptsByRun.has(runId);
      await deliveriesOf(projectId, runId).catch(async (err: unknown) => {
        if (sentHere || !(err instanceof LonghaulError && err.code === "not_found")) throw err;
        // A first attempt of another notifier may be out before its delivery
        // is recorded: say so as for an attempt in flight, rather than "no
        // webhook delivery".
        const input = await runs.getDeliveryInput(runId);
        if (input?.webhookUrl && input.project === projectId && input.finishedAt) {
          throw new LonghaulError("conflict", "the first attempt of this webhook is not recorded yet; try again shortly", { retryAfterSeconds: 1 });
        }
        return listDeliveries(projectId, runId);
      });
      let result = await store.redeliver(runId);
      const local = attemptsByRun.get(runId);
      if (result === "locked" && local) {
        // The attempt in flight is this notifier's (its POST may be done, its
        // record waiting for its batch): redeliver once it has ended.
        await local.catch(() => undefined);
        result = await store.redeliver(runId);
      }
      if (result === null) throw new LonghaulError("not_found", "this run has no webhook delivery");
      if (result === "locked") {
        throw new LonghaulError("conflict", "an attempt of this webhook is in flight; try again when it ends", {
          retryAfterSeconds: Math.ceil(options.attemptTimeoutMs / 1000),
        });
      }
      await reportNow([runId]);
      void deliverNow(runId).catch((err: unknown) => log.warn({ err, run_id: runId }, "redelivery left to the poller"));
      return listDeliveries(projectId, runId);
    },
  };
}

export type NotifierCore = ReturnType<typeof createNotifierCore>;
