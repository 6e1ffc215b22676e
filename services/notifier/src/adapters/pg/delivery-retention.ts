import type { Kysely } from "kysely";
import type { Logger } from "@longhaul/shared/logger";
import { deleteOldDeliveries } from "./delete-old-deliveries.js";
import type { NotifierDatabase } from "./schema.js";

/** Deliveries per statement: each is a short transaction holding few row locks. */
const BATCH = 500;
/** Statements per pass; a larger backlog goes on at the next pass. */
const BATCHES_PER_PASS = 10;

/**
 * Deletes settled deliveries past the run retention period every
 * `intervalMs`, in small batches (deleteOldDeliveries). A pass with nothing
 * to delete is one statement; a pass that leaves a backlog comes back in a
 * second. The first pass runs one interval after start.
 */
export function startDeliveryRetention(
  db: Kysely<NotifierDatabase>,
  opts: { retentionSeconds: number; intervalMs: number; log: Logger },
): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const pass = async (): Promise<boolean> => {
    let deleted = 0;
    for (let i = 0; i < BATCHES_PER_PASS; i++) {
      const n = await deleteOldDeliveries(db, opts.retentionSeconds, BATCH);
      deleted += n;
      if (n < BATCH) {
        if (deleted > 0) opts.log.info({ deliveries: deleted }, "deleted deliveries past retention");
        return false;
      }
    }
    opts.log.info({ deliveries: deleted }, "deleted deliveries past retention; more left");
    return true;
  };
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = pass().then(
        (more) => schedule(more ? 1_000 : opts.intervalMs),
        (err: unknown) => {
          opts.log.warn({ err }, "deleting old deliveries failed; the next pass retries");
          schedule(opts.intervalMs);
        },
      );
    }, ms);
  };
  schedule(opts.intervalMs);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
