// Postgres commits per run, from `xact_commit` in pg_stat_database (every
// committed transaction, read-only ones included) of a system's databases.
//
// Postgres (15+) backends publish their counts at most once a second while
// busy and 10 s after going idle, so a snapshot is exact only when every
// backend that worked has been idle 10 s since, or has exited. Hence:
//   settle (10 s+) → A → idle window → A' → [window 1] → settle → B1 → [window 2] → settle → B2
// (A system's own shutdown is left out: graphile-worker's alone commits ~100 times.)
// The idle window gives the system's background rate (pollers, reconcilers),
// charged per run in each window as `background`; `work` is the rest.
import { now, sleep } from "./clock.mjs";

/**
 * Starts counting: waits for the statistics to settle and measures the idle
 * rate. `close(runs)` ends the current window and opens the next.
 * @param {{ commits(names: string[]): Promise<Record<string, number>> }} pg
 * @param {Record<string, string>} parts  database name of each part of the system, e.g. { scheduler, notifier }
 * @param {{ statsSettleMs: number, idleWindowMs: number }} cfg
 */
export async function commitLedger(pg, parts, cfg) {
  const dbs = Object.values(parts);
  await sleep(cfg.statsSettleMs);
  const a = await pg.commits(dbs);
  const t0 = now();
  await sleep(cfg.idleWindowMs);
  let mark = await pg.commits(dbs);
  let markAt = now();
  const idlePerSecond = Object.fromEntries(dbs.map((db) => [db, (mark[db] - a[db]) / ((markAt - t0) / 1000)]));
  return {
    idlePerSecond,
    /** Ends the window that started at the last mark, over `runs` runs, once the statistics settled. */
    async close(runs) {
      await sleep(cfg.statsSettleMs);
      const b = await pg.commits(dbs);
      const bAt = now();
      const seconds = (bAt - markAt) / 1000;
      const byPart = Object.fromEntries(
        Object.entries(parts).map(([part, db]) => {
          // No run finished (an overloaded machine): nothing to divide by.
          const total = runs > 0 ? (b[db] - mark[db]) / runs : NaN;
          const background = (idlePerSecond[db] * seconds) / runs;
          return [part, { total, background, work: total - background, idlePerSecond: idlePerSecond[db] }];
        }),
      );
      mark = b;
      markAt = bAt;
      const sum = (k) => Object.values(byPart).reduce((s, p) => s + p[k], 0);
      return { runs, seconds, parts: byPart, total: sum("total"), work: sum("work"), background: sum("background") };
    },
  };
}
