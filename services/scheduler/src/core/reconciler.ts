import { context, runContext } from "@longhaul/shared/telemetry";
import type { SchedulerDeps } from "./deps.js";
import { createEffects } from "./deps.js";
import type { RunLifecycle } from "./run-lifecycle.js";

const BATCH = 200;
/** Runs per retention statement: each is a short transaction that holds few row locks. */
const RETENTION_BATCH = 500;
/** Retention statements per tick; a larger backlog goes on at the next tick. */
const RETENTION_BATCHES_PER_TICK = 10;

/**
 * One pass of the scheduler's repairs (docs/ARCHITECTURE.md "Recovery"). Every
 * copy of the scheduler runs it; row locks with SKIP LOCKED keep copies from
 * doing the same work twice. Postgres is the truth; JetStream may lose a
 * message, so anything left waiting too long is published again.
 */
export function createReconciler(deps: SchedulerDeps, lifecycle: RunLifecycle) {
  const { store, settings, log } = deps;
  const effects = createEffects(deps);
  let nextRetention = 0;
  // A scheduler that has just started (or restarted) lets invokers reach it
  // for one lease before it ends anything as lost: their heartbeats failed
  // while no scheduler answered, and that is not the invoker's loss.
  const leasesFrom = Date.now() + settings.leaseSeconds * 1000;

  async function step(name: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      log.warn({ err, step: name }, "reconcile step failed; next tick retries");
    }
  }

  /**
   * Retention (DESIGN.md "Data"): bodies after LONGHAUL_RETENTION_DAYS, whole
   * runs after LONGHAUL_RUN_RETENTION_DAYS, idle invoker sessions after an
   * hour. One index-only probe says which have work, so a pass with nothing
   * to delete is one read; work goes in small batches, each its own short
   * transaction. True when a backlog is left for the next tick.
   */
  async function retentionPass(): Promise<boolean> {
    const due = await store.retentionDue(settings.retentionSeconds, settings.runRetentionSeconds);
    let bodies = 0;
    let deleted = 0;
    // Each pass has its own budget, so a body backlog never holds back deletions.
    let backlog = false;
    if (due.bodies) {
      backlog = true;
      for (let i = 0; i < RETENTION_BATCHES_PER_TICK; i++) {
        const r = await store.dropOldBodies(settings.retentionSeconds, RETENTION_BATCH);
        bodies += r.runs;
        if (!r.moved) {
          backlog = false;
          break;
        }
      }
    }
    if (due.runs) {
      let left = true;
      for (let i = 0; i < RETENTION_BATCHES_PER_TICK && left; i++) {
        const n = await store.deleteOldRuns(settings.runRetentionSeconds, RETENTION_BATCH);
        deleted += n;
        left = n === RETENTION_BATCH;
      }
      backlog ||= left;
    }
    if (bodies > 0) log.info({ runs: bodies }, "dropped bodies past retention");
    if (deleted > 0) log.info({ runs: deleted }, "deleted runs past retention");
    if (due.sessions) {
      const n = await store.dropIdleSessions();
      if (n > 0) log.info({ sessions: n }, "forgot invoker sessions idle for an hour");
    }
    return backlog;
  }

  let nextDueAt: Date | undefined;

  return {
    /** When the first waiting run becomes due, as the last pass saw it. */
    nextDueAt: () => nextDueAt,

    /**
     * One pass: a single read says which repairs have work (an idle mesh
     * costs one statement per tick), then only those run. True when some
     * repair had work: the caller ticks at full rate while there is work and
     * slows down while there is none.
     */
    async tick(): Promise<boolean> {
      let due;
      try {
        due = await store.dueWork(settings.redispatchAfterSeconds, settings.webhookRepublishAfterSeconds);
      } catch (err) {
        log.warn({ err, step: "probe" }, "reconcile probe failed; next tick retries");
        return true;
      }
      nextDueAt = due.nextDueAt ?? undefined;
      const leasesDue = due.leases && Date.now() >= leasesFrom;
      if (due.expire) await step("expire", async () => {
        for (const r of await store.expireQueued()) {
          const run = await store.findRun(null, r.id);
          // In the run's trace, so the line carries its trace id.
          await context.with(runContext(run?.traceparent ?? ""), async () => {
            log.info({ run_id: r.id, app: r.app }, "run expired in the queue");
            if (run) await effects.changed(run);
          });
        }
      });
      if (leasesDue) await step("leases", async () => {
        for (const l of await store.expiredLeases(BATCH)) {
          // Said only by the copy that ended it: the end re-checks the lease under the row lock.
          if (await lifecycle.expireLease(l.id, l.attempt)) log.warn({ run_id: l.id, attempt: l.attempt }, "lease expired: invoker lost");
        }
      });
      if (due.queued) await step("queued", async () => {
        for (const a of await store.appsWithDueRuns(BATCH)) {
          await effects.dispatched(await store.dispatchQueued(a.project, a.app, BATCH));
        }
      });
      if (due.redispatch) await step("redispatch", async () => {
        const stale = await store.staleDispatches(settings.redispatchAfterSeconds, BATCH);
        if (stale.length > 0) log.warn({ runs: stale.length }, "republishing unclaimed dispatches");
        await effects.dispatched(stale, { republish: true });
      });
      if (due.webhooks) await step("webhooks", async () => {
        for (const r of await store.untakenWebhooks(settings.webhookRepublishAfterSeconds, BATCH)) {
          log.warn({ run_id: r.id }, "republishing run.finished: no notifier took it");
          await deps.bus.publishFinished(r, { republish: true });
        }
      });
      if (Date.now() >= nextRetention) await step("retention", async () => {
        nextRetention = (await retentionPass()) ? Date.now() : Date.now() + settings.retentionIntervalMs;
      });
      return due.expire || leasesDue || due.queued || due.redispatch || due.webhooks;
    },
  };
}

/** The reconciler's pace, from config. */
export interface ReconcilerPace {
  /** Between passes while they find work. */
  tickMs: number;
  /** The longest pause while they find none. */
  idleTickMs: number;
}

/**
 * Runs `tick` one pass at a time: every `tickMs` while it finds work; while
 * it finds none the pause doubles up to `idleTickMs` (an idle mesh costs
 * Postgres a statement every 5 s), but never past the moment the first
 * waiting run becomes due (a delayed run, a retry's backoff: `nextDueAt`), so
 * they start on time without polling. `wake` brings it back to full rate at
 * once (also when it comes during a pass).
 */
export function startReconcilerLoop(reconciler: { tick(): Promise<boolean>; nextDueAt?(): Date | undefined }, pace: ReconcilerPace) {
  let ticking: Promise<void> | undefined;
  let delay = pace.tickMs;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let wokenDuringPass = false;
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      wokenDuringPass = false;
      ticking = reconciler.tick().then(
        (busy) => {
          ticking = undefined;
          delay = busy || wokenDuringPass ? pace.tickMs : Math.min(delay * 2, Math.max(pace.idleTickMs, pace.tickMs));
          const due = reconciler.nextDueAt?.();
          const untilDue = due ? Math.max(due.getTime() - Date.now(), pace.tickMs) : Infinity;
          if (untilDue < delay) {
            // Sleep until the run is due, at full rate from then on.
            delay = pace.tickMs;
            schedule(untilDue);
          } else schedule(delay);
        },
        () => {
          ticking = undefined;
          schedule(pace.tickMs);
        },
      );
    }, ms);
  };
  schedule(delay);
  return {
    /** Back to full rate now (after the running pass, if one runs), unless already there. */
    wake(): void {
      if (ticking) {
        wokenDuringPass = true;
        return;
      }
      if (delay === pace.tickMs) return;
      delay = pace.tickMs;
      clearTimeout(timer);
      schedule(delay);
    },
    /** No pass starts from now on; resolves once the running one ends. */
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await ticking;
    },
  };
}
