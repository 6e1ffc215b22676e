import { withTimeout } from "../timers.js";
import { sql, type Kysely } from "kysely";

/** Options of {@link probePostgres}. */
export interface PostgresProbeOptions {
  /**
   * Each probe is a transaction (a commit in pg_stat_database): at rest this
   * is most of what an idle mesh costs Postgres. @default 5000
   */
  intervalMs?: number;
  /** A probe slower than this counts as down. @default 3000 */
  timeoutMs?: number;
}

/**
 * Runs `select 1` every `intervalMs` (5 s) and reports each result: a pool only
 * learns of an outage when a query fails, and an idle service runs none, so
 * health would say SERVING with Postgres gone. One probe at a time.
 */
export function probePostgres<DB>(
  db: Kysely<DB>,
  onResult: (up: boolean, err?: unknown) => void,
  options: PostgresProbeOptions = {},
): { stop(): void } {
  const intervalMs = options.intervalMs ?? 5_000;
  const timeoutMs = options.timeoutMs ?? 3_000;
  let inFlight = false;
  let stopped = false;
  const probe = async () => {
    if (inFlight || stopped) return;
    inFlight = true;
    try {
      await withTimeout(sql`select 1`.execute(db), timeoutMs, `select 1 took over ${timeoutMs} ms`);
      if (!stopped) onResult(true);
    } catch (err) {
      if (!stopped) onResult(false, err);
    } finally {
      inFlight = false;
    }
  };
  const interval = setInterval(() => void probe(), intervalMs);
  interval.unref();
  return {
    stop() {
      stopped = true;
      clearInterval(interval);
    },
  };
}
