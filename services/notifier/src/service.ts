import { hostname } from "node:os";
import type { Logger } from "@longhaul/shared/logger";
import { createRegistry, registerConsumerPending, serveMetrics } from "@longhaul/shared/metrics";
import { connectionAgeOptions, createGrpcServer, createGrpcTls, grpcTlsMode } from "@longhaul/shared/grpc";
import { notifierPb } from "@longhaul/shared/proto";
import { connectNats, ensureStreams, natsNames, startLeaderLease, streamSettings } from "@longhaul/shared/nats";
import { createDependencyHealth } from "@longhaul/shared/service";
import { createDb, ensureDatabase, isConnectionError, readySchema } from "@longhaul/shared/db";
import { resultUrlKey } from "@longhaul/shared/result-url";
import { ownAddresses } from "@longhaul/shared/config";
import { createEgressPolicy, webhookNetworks } from "@longhaul/shared/egress";
import type { NotifierConfig } from "./config.js";
import { createNotifierCore } from "./core/notifier-core.js";
import { startPoller } from "./core/poller.js";
import { createSchedulerRunSource } from "./adapters/grpc/scheduler-client.js";
import { notifierServiceImpl } from "./adapters/grpc/notifier-service.js";
import { createWebhookSender, type Resolver } from "./adapters/http/webhook-sender.js";
import { createNotifierMetrics } from "./adapters/metrics.js";
import { ACK_WAIT_SECONDS, startFinishedConsumer } from "./adapters/nats/finished-consumer.js";
import { countPendingDeliveries, createPgDeliveryStore } from "./adapters/pg/delivery-store.js";
import { startDeliveryRetention } from "./adapters/pg/delivery-retention.js";
import { notifierMigrationSet } from "./adapters/pg/migrations.js";
import type { NotifierDatabase } from "./adapters/pg/schema.js";
import { createPgSecretStore } from "./adapters/pg/secret-store.js";

/** Milliseconds between two samples of the event-loop delay (its lag metrics). */
const EVENT_LOOP_RESOLUTION_MS = 1_000;

/** A running notifier, as main.ts and the tests hold it. */
export interface RunningNotifier {
  grpcPort: number;
  metricsPort: number;
  /** gRPC TLS: "off", "on", or "mutual" (client certificates required). */
  grpcTls: "off" | "on" | "mutual";
  /** Stops taking work, lets attempts in flight end, closes every connection. */
  stop(): Promise<void>;
}

/** Test-only seams; production passes none. */
export interface NotifierSeams {
  /** Stands in for DNS (the pinning tests). */
  resolve?: Resolver;
}

/**
 * Wires the notifier: Postgres (once migrated) and NATS, the core, the gRPC server,
 * `/metrics`, the `run.finished` consumer and the poller. Resolves once all of
 * them run; health turns SERVING then, and NOT_SERVING while NATS or Postgres
 * is down.
 */
export async function startNotifier(config: NotifierConfig, log: Logger, seams: NotifierSeams = {}): Promise<RunningNotifier> {
  if (config.LONGHAUL_MIGRATE_AT_START && config.LONGHAUL_ENSURE_DATABASE) await ensureDatabase(config.DATABASE_URL);
  const db = createDb<NotifierDatabase>({ url: config.DATABASE_URL, log, poolSize: 20, prepare: config.LONGHAUL_PG_PREPARED_STATEMENTS });
  await readySchema(db, notifierMigrationSet, config, log);

  // The event-loop delay is sampled once a second, not every 10 ms: between
  // webhooks nothing else should wake the notifier but NATS and its own rare
  // timers (at 10 ms that sampling alone cost an idle notifier ~0.5 % of a core).
  const registry = createRegistry("notifier", { eventLoopResolutionMs: EVENT_LOOP_RESOLUTION_MS });
  // TLS (mutual with a CA) for the server and the scheduler client when LONGHAUL_GRPC_TLS_* is set.
  const tls = createGrpcTls(config, log);
  const grpc = createGrpcServer({
    tls,
    log,
    address: `${config.NOTIFIER_GRPC_HOST}:${config.NOTIFIER_GRPC_PORT}`,
    internalToken: config.LONGHAUL_INTERNAL_TOKEN,
    registry,
    ...connectionAgeOptions(config),
  });
  const health = createDependencyHealth((serving) => grpc.setServing(serving), log);

  const names = natsNames(config.LONGHAUL_NATS_PREFIX);
  const nc = await connectNats(config.NATS_URL, "longhaul-notifier", log, (up) => health.set("nats", up));
  const jsm = await ensureStreams(nc, names, streamSettings(config));
  // Gauges of shared state (deliveries pending, the consumer's backlog) come from one copy only.
  const metricsLease = await startLeaderLease(nc, {
    bucket: names.leaseBucket,
    key: "notifier-metrics",
    holder: `${hostname()}-${process.pid}`,
    log,
    replicas: config.LONGHAUL_NATS_REPLICAS,
  });

  const runs = createSchedulerRunSource({
    address: config.SCHEDULER_ADDR,
    internalToken: config.LONGHAUL_INTERNAL_TOKEN,
    timeoutMs: config.NOTIFIER_RPC_TIMEOUT_MS,
    tls,
  });
  // Webhooks go where apps may go (the same guard): public addresses, private
  // ones only when the operator allows them, never link-local, metadata or Longhaul's own.
  const egress = await createEgressPolicy(
    webhookNetworks(config.LONGHAUL_WEBHOOK_ALLOW_PRIVATE),
    ownAddresses(config, [`127.0.0.1:${config.NOTIFIER_GRPC_PORT}`, `127.0.0.1:${config.NOTIFIER_METRICS_PORT}`]),
    seams.resolve,
  );
  const sender = createWebhookSender({
    allowPrivate: config.LONGHAUL_WEBHOOK_ALLOW_PRIVATE,
    egress,
    timeoutMs: config.NOTIFIER_ATTEMPT_TIMEOUT_SECONDS * 1000,
    maxResponseBytes: config.NOTIFIER_MAX_RESPONSE_BYTES,
    ...(seams.resolve ? { resolve: seams.resolve } : {}),
  });
  const core = createNotifierCore({
    store: createPgDeliveryStore(db),
    secrets: createPgSecretStore(db),
    runs,
    sender,
    log,
    payload: {
      maxInlineBytes: config.NOTIFIER_MAX_INLINE_BYTES,
      publicUrl: config.LONGHAUL_PUBLIC_URL,
      resultUrlKey: resultUrlKey(config.LONGHAUL_INTERNAL_TOKEN),
      resultUrlTtlSeconds: config.NOTIFIER_RESULT_URL_TTL_SECONDS,
    },
    retryScheduleSeconds: config.NOTIFIER_RETRY_SCHEDULE,
    attemptTimeoutMs: config.NOTIFIER_ATTEMPT_TIMEOUT_SECONDS * 1000,
    rpcTimeoutMs: config.NOTIFIER_RPC_TIMEOUT_MS,
    maxConcurrency: config.NOTIFIER_MAX_CONCURRENCY,
    // One commit per webhook (the first attempt before its record) while an
    // attempt fits four times in the event's ack wait; longer attempts get the
    // record first, so that the event is never offered again mid-attempt.
    attemptBeforeRecord: config.NOTIFIER_ATTEMPT_TIMEOUT_SECONDS * 4 <= ACK_WAIT_SECONDS,
    secretOverlapSeconds: config.NOTIFIER_SECRET_OVERLAP_SECONDS,
    metrics: createNotifierMetrics(registry, () => countPendingDeliveries(db), metricsLease.isLeader),
  });

  grpc.add(notifierPb.NotifierInternalServiceService, notifierServiceImpl(core, log), { internal: true });
  const grpcPort = await grpc.start();
  const metricsServer = await serveMetrics(registry, config.NOTIFIER_METRICS_HOST, config.NOTIFIER_METRICS_PORT);

  const consumer = await startFinishedConsumer({ nc, jsm, names, core, log });
  registerConsumerPending(registry, jsm, names.eventsStream, names.notifierConsumer, { exportIf: metricsLease.isLeader });
  const poller = startPoller({
    poll: core.pollOnce,
    intervalMs: config.NOTIFIER_POLL_MS,
    idleMaxMs: config.NOTIFIER_IDLE_POLL_MS,
    onResult: (ok, err) => {
      if (!ok) log.warn({ err }, "webhook poll failed");
      // A poll that works proves Postgres up; only a connection error proves it down.
      if (ok) health.set("postgres", true);
      else if (isConnectionError(err)) health.set("postgres", false, err);
    },
  });
  const retention = startDeliveryRetention(db, {
    retentionSeconds: config.LONGHAUL_RUN_RETENTION_DAYS * 86_400,
    intervalMs: config.NOTIFIER_RETENTION_INTERVAL_SECONDS * 1000,
    log,
  });
  core.onCapacity(poller.wake);
  core.onRetryDue(poller.wakeIn);
  health.started();

  return {
    grpcPort,
    metricsPort: metricsServer.port,
    grpcTls: grpcTlsMode(tls),
    async stop() {
      health.stopping();
      await consumer.stop();
      await poller.stop();
      await retention.stop();
      await core.drain();
      await sender.close?.();
      await grpc.stop(5_000);
      await metricsServer.close();
      runs.close();
      tls?.close();
      await metricsLease.stop();
      await nc.drain();
      await db.destroy();
    },
  };
}
