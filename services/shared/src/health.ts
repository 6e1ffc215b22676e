import { sql, type Kysely } from "kysely";
import type { Logger } from "pino";

/**
 * What a service's `grpc.health.v1.Health` says: SERVING only once the
 * service has started and while every dependency it reported (Postgres,
 * NATS, ...) is up (DESIGN.md, issue 6). Each dependency reports itself with
 * `set(name, up)`; changes are logged once, not per probe.
 */
export interface DependencyHealth {
  /** `cause`: why it is down, logged with the change. */
  set(dependency: string, up: boolean, cause?: unknown): void;
  /** The service serves from now on (health follows the dependencies). */
  started(): void;
  /** True while started and nothing is down. */
  serving(): boolean;
}

export function createDependencyHealth(setServing: (serving: boolean) => void, log: Logger): DependencyHealth {
  const down = new Set<string>();
  let started = false;
  let last: boolean | undefined;
  const refresh = () => {
    const now = started && down.size === 0;
    if (now === last) return;
    last = now;
    setServing(now);
  };
  return {
    set(dependency, up, cause) {
      if (up === !down.has(dependency)) return;
      if (up) down.delete(dependency);
      else down.add(dependency);
      if (up) log.info({ dependency }, "dependency is back; serving");
      else log.warn({ dependency, err: cause }, "dependency is down; health NOT_SERVING");
      refresh();
    },
    started() {
      started = true;
      refresh();
    },
    serving: () => started && down.size === 0,
  };
}

/** Options of {@link probePostgres}. */
export interface PostgresProbeOptions {
  /** @default 2000 */
  intervalMs?: number;
  /** A probe slower than this counts as down. @default 3000 */
  timeoutMs?: number;
}

/**
 * Runs `select 1` every `intervalMs` and reports each result: a pool only
 * learns of an outage when a query fails, and an idle service runs none, so
 * health would say SERVING with Postgres gone. One probe at a time.
 */
export function probePostgres<DB>(
  db: Kysely<DB>,
  onResult: (up: boolean, err?: unknown) => void,
  options: PostgresProbeOptions = {},
): { stop(): void } {
  const intervalMs = options.intervalMs ?? 2_000;
  const timeoutMs = options.timeoutMs ?? 3_000;
  let inFlight = false;
  let stopped = false;
  const probe = async () => {
    if (inFlight || stopped) return;
    inFlight = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`select 1 took over ${timeoutMs} ms`)), timeoutMs);
      });
      await Promise.race([sql`select 1`.execute(db), timeout]);
      if (!stopped) onResult(true);
    } catch (err) {
      if (!stopped) onResult(false, err);
    } finally {
      clearTimeout(timer);
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
