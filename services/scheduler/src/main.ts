import { hostname } from "node:os";
import { ownAddresses } from "@longhaul/shared/config";
import { createEgressPolicy } from "@longhaul/shared/egress";
import { createRegistry, serveMetrics } from "@longhaul/shared/metrics";
import { connectionAgeOptions, createGrpcServer, createGrpcTls, grpcTlsMode } from "@longhaul/shared/grpc";
import { adminPb, appsPb, runsPb, schedulerPb } from "@longhaul/shared/proto";
import { connectNats, ensureStreams, natsNames, startLeaderLease, streamSettings } from "@longhaul/shared/nats";
import { createDb, ensureDatabase, probePostgres, readySchema } from "@longhaul/shared/db";
import { createDependencyHealth, runService } from "@longhaul/shared/service";
import { loadConfig, projectKeys } from "./config.js";
import { createRunLifecycle } from "./core/run-lifecycle.js";
import { createReconciler, startReconcilerLoop } from "./core/reconciler.js";
import type { SchedulerDeps } from "./core/deps.js";
import { createRunRegistry } from "./core/run-registry.js";
import { createTenancy } from "./core/tenancy.js";
import { createAdminService, createKeyService } from "./adapters/grpc/admin-service.js";
import { createAttemptStreams } from "./adapters/grpc/attempt-streams.js";
import { createHandoffStreams } from "./adapters/grpc/handoff-streams.js";
import { createInternalService } from "./adapters/grpc/internal-service.js";
import { createAppService, createRunService, createSubmit } from "./adapters/grpc/public-services.js";
import { createSubmitStreams } from "./adapters/grpc/submit-streams.js";
import { createSchedulerMetrics, createStreamSubmitCounter, createWatchGauges } from "./adapters/metrics.js";
import { createEventBus } from "./adapters/nats/event-bus.js";
import { settingsNotices } from "./adapters/nats/settings-notices.js";
import { ensureProjectKey } from "./adapters/pg/app-store.js";
import { schedulerMigrationSet } from "./adapters/pg/migrations.js";
import { createPgStore, createPgTenancyStore } from "./adapters/pg/pg-store.js";
import type { SchedulerDb } from "./adapters/pg/schema.js";
import { createSubmitSettingsCache, readSubmitSettings } from "./adapters/pg/submit-settings.js";

/**
 * How long the gRPC server waits at shutdown for the calls and the SubmitRuns
 * and Attempts messages in flight; well within runService's grace (30 s),
 * which the closers after it share.
 */
const GRPC_STOP_GRACE_MS = 10_000;

/** Wiring only: Postgres → NATS → the core → gRPC and /metrics → the reconciler. */
await runService({
  name: "scheduler",
  loadConfig,
  async start(config, log) {
    if (config.LONGHAUL_MIGRATE_AT_START && config.LONGHAUL_ENSURE_DATABASE) await ensureDatabase(config.DATABASE_URL);
    const db = createDb<SchedulerDb>({ url: config.DATABASE_URL, log, poolSize: config.SCHEDULER_DB_POOL_SIZE, prepare: config.LONGHAUL_PG_PREPARED_STATEMENTS });
    await readySchema(db, schedulerMigrationSet, config, log);
    for (const { project, key } of projectKeys(config)) await ensureProjectKey(db, project, key);

    const names = natsNames(config.LONGHAUL_NATS_PREFIX);
    const registry = createRegistry("scheduler");
    // TLS (mutual with a CA) when LONGHAUL_GRPC_TLS_* is set; plaintext otherwise.
    const tls = createGrpcTls(config, log);
    const grpc = createGrpcServer({
      log,
      address: `${config.SCHEDULER_GRPC_HOST}:${config.SCHEDULER_GRPC_PORT}`,
      internalToken: config.LONGHAUL_INTERNAL_TOKEN,
      registry,
      tls,
      ...connectionAgeOptions(config),
    });
    // Health: NOT_SERVING while NATS or Postgres is unreachable.
    const health = createDependencyHealth((serving) => grpc.setServing(serving), log);
    const nc = await connectNats(config.NATS_URL, "longhaul-scheduler", log, (up) => health.set("nats", up));
    const bus = createEventBus(nc, names, log);
    const pgProbe = probePostgres(db, (up, err) => health.set("postgres", up, err));
    await ensureStreams(nc, names, streamSettings(config));
    // Gauges of shared state (queue depth from Postgres) are exported by one copy only, so that sums over copies hold.
    const metricsLease = await startLeaderLease(nc, {
      bucket: names.leaseBucket,
      key: "scheduler-metrics",
      holder: `${hostname()}-${process.pid}`,
      log,
      replicas: config.LONGHAUL_NATS_REPLICAS,
    });

    // Submit settings (a project's limits, its app) held 5 s at most, dropped
    // at once on every copy when they change: a submit is then one statement.
    const notices = settingsNotices(nc, names, log);
    const submitSettings = createSubmitSettingsCache((project, app) => readSubmitSettings(db, project, app), {
      ttlMs: 5_000,
      announce: notices.announce,
    });
    notices.follow(submitSettings);
    const store = createPgStore(db, submitSettings, {
      submitWindowMs: config.SCHEDULER_SUBMIT_WINDOW_MS,
      endWindowMs: config.SCHEDULER_END_WINDOW_MS,
      endWindowMaxMs: config.SCHEDULER_END_WINDOW_MAX_MS,
      // Four connections stay free of per-run writes: heartbeats, submits, the batched ends.
      perRunWrites: Math.max(1, config.SCHEDULER_DB_POOL_SIZE - 4),
    });
    const deps: SchedulerDeps = {
      store,
      bus,
      metrics: createSchedulerMetrics(registry, store, { exportShared: metricsLease.isLeader }),
      log,
      settings: {
        leaseSeconds: config.SCHEDULER_LEASE_SECONDS,
        maxRequestBytes: config.LONGHAUL_MAX_BODY_BYTES,
        allowPrivateWebhooks: config.LONGHAUL_WEBHOOK_ALLOW_PRIVATE,
        maxQueuedPerApp: config.SCHEDULER_MAX_QUEUED_PER_APP,
        idempotencyTtlSeconds: config.SCHEDULER_IDEMPOTENCY_TTL_SECONDS,
        redispatchAfterSeconds: config.SCHEDULER_REDISPATCH_AFTER_SECONDS,
        webhookRepublishAfterSeconds: config.SCHEDULER_WEBHOOK_REPUBLISH_SECONDS,
        retentionSeconds: config.LONGHAUL_RETENTION_DAYS * 86_400,
        runRetentionSeconds: config.LONGHAUL_RUN_RETENTION_DAYS * 86_400,
        retentionIntervalMs: config.SCHEDULER_RETENTION_INTERVAL_SECONDS * 1000,
        authCacheMs: 5_000,
      },
    };
    // Invokers' Handoff streams: a run accepted while one has room is started for it in the submit's commit.
    const handoffs = createHandoffStreams(log, config.SCHEDULER_LEASE_SECONDS);
    deps.handoff = handoffs.port;
    const runRegistry = createRunRegistry(deps);
    createWatchGauges(registry, runRegistry.watchStats);
    const lifecycle = createRunLifecycle(deps);
    const reconciler = createReconciler(deps, lifecycle);

    // Keys answer for 2 s per copy; the gateway keeps them 2 s more: a revoked key is refused within 5 s.
    const tenancy = createTenancy(
      createPgTenancyStore(db, submitSettings),
      { adminKey: config.LONGHAUL_ADMIN_KEY, previousAdminKey: config.LONGHAUL_ADMIN_KEY_PREVIOUS, defaultLimits: config.LONGHAUL_DEFAULT_LIMITS, authCacheMs: 2_000 },
      log,
    );

    // Aborted at shutdown: watches end then, rather than hold the gRPC server's stop for its whole grace.
    const closingWatches = new AbortController();
    grpc.add(runsPb.RunServiceService, createRunService(runRegistry, tenancy, log, closingWatches.signal));
    // App URLs: where they may point (DESIGN.md "Projects, keys and limits"), checked when stored.
    const egress = await createEgressPolicy(
      config.LONGHAUL_APP_ALLOWED_NETWORKS,
      ownAddresses(config, [`127.0.0.1:${config.SCHEDULER_GRPC_PORT}`, `127.0.0.1:${config.SCHEDULER_METRICS_PORT}`]),
    );
    grpc.add(appsPb.AppServiceService, createAppService(runRegistry, tenancy, log, egress));
    grpc.add(adminPb.AdminServiceService, createAdminService(tenancy, log));
    grpc.add(adminPb.KeyServiceService, createKeyService(tenancy, log));
    // The gateway's submits, as messages on its SubmitRuns streams: each made as RunService/SubmitRun makes it.
    const submitStreams = createSubmitStreams(createSubmit(runRegistry, tenancy), log, createStreamSubmitCounter(registry));
    // The invokers' claims and outcomes, as messages on their Attempts streams (and as unary calls).
    const attemptStreams = createAttemptStreams(lifecycle, config.SCHEDULER_LEASE_SECONDS, log);
    grpc.add(
      schedulerPb.SchedulerInternalServiceService,
      createInternalService({
        lifecycle,
        tenancy,
        submits: submitStreams,
        attempts: attemptStreams,
        handoffs,
        leaseSeconds: config.SCHEDULER_LEASE_SECONDS,
        log,
      }),
      { internal: true },
    );
    const port = await grpc.start();
    const metrics = await serveMetrics(registry, config.SCHEDULER_METRICS_HOST, config.SCHEDULER_METRICS_PORT);

    // The overview's rollup: one pass at a time here (and across schedulers, by a row lock).
    let rolling: Promise<void> | undefined;
    const rollUp = () => {
      rolling ??= store
        .rollUpStats()
        .then(() => undefined, (err: unknown) => log.warn({ err }, "stats rollup failed; the next pass retries"))
        .finally(() => {
          rolling = undefined;
        });
    };
    rollUp();
    const rollupTimer = setInterval(rollUp, config.SCHEDULER_STATS_ROLLUP_SECONDS * 1000);

    const reconcilerLoop = startReconcilerLoop(reconciler, { tickMs: config.SCHEDULER_TICK_MS, idleTickMs: config.SCHEDULER_IDLE_TICK_MS });
    deps.wakeReconciler = () => reconcilerLoop.wake();

    health.started();
    return {
      ready: { grpc_port: port, metrics_port: metrics.port, grpc_tls: grpcTlsMode(tls) },
      closers: [
        { name: "reconciler", close: () => reconcilerLoop.stop() },
        {
          name: "stats rollup",
          close: async () => {
            clearInterval(rollupTimer);
            await rolling;
          },
        },
        // Invokers get what was started for them, then their streams end: they reconnect to another copy.
        { name: "handoff streams", close: async () => handoffs.close() },
        {
          // The server's GOAWAY sends the clients' next streams (and unary
          // calls) to other copies. Then the long-lived streams served here
          // end, each with UNAVAILABLE ("this copy is going away"), so that
          // the stop waits for none of them: submits on the gateway's
          // SubmitRuns streams and claims and outcomes on the invokers'
          // Attempts streams once they are answered, the gateway's watches
          // at once (it opens them again on another copy).
          name: "grpc",
          close: async () => {
            // All within the same grace: a message stuck on Postgres holds none past it.
            const stopped = grpc.stop(GRPC_STOP_GRACE_MS);
            closingWatches.abort();
            await Promise.all([submitStreams.close(GRPC_STOP_GRACE_MS), attemptStreams.close(GRPC_STOP_GRACE_MS), stopped]);
          },
        },
        { name: "grpc tls reload", close: async () => tls?.close() },
        { name: "postgres probe", close: async () => pgProbe.stop() },
        { name: "metrics", close: () => metrics.close() },
        { name: "metrics lease", close: () => metricsLease.stop() },
        {
          name: "nats",
          close: () => {
            bus.sendWaiting(); // change notices of the last 10 ms go out with the drain
            return nc.drain();
          },
        },
        { name: "postgres", close: () => db.destroy() },
      ],
    };
  },
});
