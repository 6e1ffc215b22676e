import type { Logger } from "pino";

/**
 * What a service's `grpc.health.v1.Health` says: SERVING only once the
 * service has started and while every dependency it reported (Postgres,
 * NATS, ...) is up, so that a load balancer or Kubernetes stops sending it
 * work it cannot do. Each dependency reports itself with `set(name, up)`;
 * changes are logged once, not per probe.
 */
export interface DependencyHealth {
  /** `cause`: why it is down, logged with the change. */
  set(dependency: string, up: boolean, cause?: unknown): void;
  /** The service serves from now on (health follows the dependencies). */
  started(): void;
  /** The service stops (drains): NOT_SERVING from now on, whatever the dependencies say. */
  stopping(): void;
  /** True while started, not stopping, and nothing is down. */
  serving(): boolean;
}

export function createDependencyHealth(setServing: (serving: boolean) => void, log: Logger): DependencyHealth {
  const down = new Set<string>();
  let started = false;
  let stopping = false;
  let last: boolean | undefined;
  const serving = () => started && !stopping && down.size === 0;
  const refresh = () => {
    const now = serving();
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
    stopping() {
      stopping = true;
      refresh();
    },
    serving,
  };
}
