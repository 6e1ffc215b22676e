import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";

/** Options of {@link startLeaderLease}. */
export interface LeaderLeaseOptions {
  /** KV bucket of the mesh's leases (NatsNames.leaseBucket). */
  bucket: string;
  /** What is led, e.g. `scheduler-metrics`: one holder per key. */
  key: string;
  /** This copy's name (LONGHAUL_INSTANCE_ID, or host and pid). */
  holder: string;
  log: Logger;
  /** A holder that stops renewing loses the lease after this long. @default 15000 */
  ttlMs?: number;
  /** Replicas of the bucket's stream (LONGHAUL_NATS_REPLICAS). @default 1 */
  replicas?: number;
}

/** One copy of a service that holds a lease; the others stand by. */
export interface LeaderLease {
  /** True while this copy holds the lease and renewed it within its TTL. */
  isLeader(): boolean;
  /** Stops renewing and hands the lease back, so that another copy takes it at once. */
  stop(): Promise<void>;
}

/**
 * A lease in a NATS KV bucket whose entries expire after `ttlMs`: one copy
 * creates the key (a create fails while the key exists) and renews it every
 * third of the TTL with a compare-and-set on its revision; when it dies, the
 * key expires and another copy creates it. Used for work that every copy could
 * do but only one should: gauges of shared state (queue depth read from
 * Postgres, a JetStream consumer's backlog), so that a sum over copies is not
 * multiplied by their number.
 */
export async function startLeaderLease(nc: NatsConnection, options: LeaderLeaseOptions): Promise<LeaderLease> {
  const ttlMs = options.ttlMs ?? 15_000;
  const kv: KV = await new Kvm(nc).create(options.bucket, { history: 1, ttl: ttlMs, replicas: options.replicas ?? 1 });
  let revision = 0;
  let renewedAt = 0;
  let stopped = false;
  let running: Promise<void> | undefined;

  const attempt = async () => {
    const value = new TextEncoder().encode(options.holder);
    try {
      if (revision > 0) {
        revision = await kv.update(options.key, value, revision);
      } else {
        revision = await kv.create(options.key, value);
        options.log.info({ lease: options.key }, "took the lease");
      }
      renewedAt = Date.now();
    } catch (err) {
      // Taken by another copy (wrong last sequence) or NATS out of reach: not ours.
      if (revision > 0) options.log.warn({ err, lease: options.key }, "lost the lease");
      revision = 0;
    }
  };
  const tick = () => {
    running ??= attempt().finally(() => {
      running = undefined;
    });
  };
  await attempt();
  const timer = setInterval(tick, Math.max(100, Math.floor(ttlMs / 3)));
  timer.unref();

  return {
    isLeader: () => !stopped && revision > 0 && Date.now() - renewedAt < ttlMs,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
      if (revision > 0) {
        // Only our own entry: a compare-and-set on the revision we wrote.
        await kv.delete(options.key, { previousSeq: revision }).catch((err: unknown) => {
          options.log.warn({ err, lease: options.key }, "could not hand the lease back; it expires on its own");
        });
        revision = 0;
      }
    },
  };
}
