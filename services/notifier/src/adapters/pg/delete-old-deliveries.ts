import { sql, type Kysely } from "kysely";
import type { NotifierDatabase } from "./schema.js";

/**
 * Deletes up to `batch` settled deliveries (delivered or failed) last changed
 * before the run retention period, oldest first, with their attempts (the
 * foreign key's cascade), in one statement. The partial index
 * webhook_deliveries_settled (migration 0013) answers the inner select, so a
 * pass with nothing to delete reads no delivery. A pending delivery is never
 * deleted: its retries go on. Returns how many went.
 */
export async function deleteOldDeliveries(db: Kysely<NotifierDatabase>, retentionSeconds: number, batch: number): Promise<number> {
  const r = await sql`
    delete from webhook_deliveries where run_id in (
      select run_id from webhook_deliveries
      where state <> 'pending' and updated_at < now() - make_interval(secs => ${retentionSeconds})
      order by updated_at limit ${batch}
      for update skip locked)`.execute(db);
  return Number(r.numAffectedRows ?? 0);
}
