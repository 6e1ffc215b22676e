import { hostname } from "node:os";
import { jetstreamManager } from "@nats-io/jetstream";
import { createRegistry, Gauge, registerConsumerPending, serveMetrics } from "@longhaul/shared/metrics";
import { connectionAgeOptions, createGrpcServer, createGrpcTls, grpcTlsMode } from "@longhaul/shared/grpc";
import { invokerPb } from "@longhaul/shared/proto";
import { connectNats, natsNames, startLeaderLease, streamSettings } from "@longhaul/shared/nats";
import { createDependencyHealth, runService } from "@longhaul/shared/service";
import { loadConfig } from "./config.js";
import { ownAddresses } from "@longhaul/shared/config";
import { createEgressPolicy } from "@longhaul/shared/egress";
import { createCapacity } from "./core/capacity.js";
import { HeartbeatLoop } from "./core/heartbeat-loop.js";
import { systemClock } from "./core/ports.js";
import { RunInvoker } from "./core/run-invoker.js";
import { createInvokeService } from "./adapters/grpc/invoke-service.js";
import { createSchedulerClient } from "./adapters/grpc/scheduler-client.js";
import { startHandoff } from "./adapters/grpc/handoff-client.js";
import { createUpstreamAgent, createUpstreamClient } from "./adapters/http/upstream-client.js";
import { subscribeCancels } from "./adapters/nats/cancel-subscriber.js";
import { startDispatchConsumer } from "./adapters/nats/dispatch-consumer.js";
import { createInvokerMetrics } from "./metrics.js";

/** Wiring only: clients → core → servers → consumers. */
await runService({
  name: "invoker",
  loadConfig,
  logFields: (config) => ({ invoker_id: config.invokerId }),
  async start(config, log) {
    const names = natsNames(config.LONGHAUL_NATS_PREFIX);
    const drainMs = config.INVOKER_DRAIN_SECONDS * 1000;

    const registry = createRegistry("invoker");
    const metrics = createInvokerMetrics(registry);
    const draining = new Gauge({ name: "longhaul_invoker_draining", help: "1 while the invoker drains (SIGTERM): no new dispatches, held calls run to their end", registers: [registry] });
    const capacity = createCapacity(config.INVOKER_MAX_IN_FLIGHT);
    // Apps are reached only where the egress policy lets them be (DESIGN.md "Projects, keys and limits").
    const egress = await createEgressPolicy(
      config.LONGHAUL_APP_ALLOWED_NETWORKS,
      ownAddresses(config, [`127.0.0.1:${config.INVOKER_GRPC_PORT}`, `127.0.0.1:${config.INVOKER_METRICS_PORT}`]),
    );
    const agent = createUpstreamAgent({ egress });
    // TLS (mutual with a CA) for the server and the scheduler client when LONGHAUL_GRPC_TLS_* is set.
    const tls = createGrpcTls(config, log);
    const scheduler = createSchedulerClient(config.SCHEDULER_ADDR, config.LONGHAUL_INTERNAL_TOKEN, {
      tls,
      outcomeWindowMs: config.INVOKER_OUTCOME_WINDOW_MS,
    });
    const invoker = new RunInvoker({
      invokerId: config.invokerId,
      scheduler,
      upstream: createUpstreamClient({ agent, maxResponseBytes: config.INVOKER_MAX_RESPONSE_BYTES }),
      capacity,
      clock: systemClock,
      metrics,
      log,
      maxConcurrentReports: config.INVOKER_MAX_CONCURRENT_REPORTS,
    });
    const heartbeats = new HeartbeatLoop({
      invokerId: config.invokerId,
      scheduler,
      clock: systemClock,
      log,
      held: () => invoker.heldRuns(),
      owned: () => invoker.ownedRuns(),
      endedStreams: () => handoff?.endedStreams() ?? [],
      onLost: (lost) => invoker.abortLost(lost),
      claimLeaseSeconds: () => invoker.leaseSeconds(),
      overrideMs: config.INVOKER_HEARTBEAT_MS,
    });

    const grpc = createGrpcServer({
      log,
      address: `${config.INVOKER_GRPC_HOST}:${config.INVOKER_GRPC_PORT}`,
      internalToken: config.LONGHAUL_INTERNAL_TOKEN,
      registry,
      tls,
      ...connectionAgeOptions(config),
    });
    grpc.add(
      invokerPb.InvokerServiceService,
      createInvokeService({ agent, capacity, metrics, log, recordSyncRun: (r) => scheduler.recordSyncRun(r) }),
      { internal: true },
    );

    // Health: SERVING once it consumes, NOT_SERVING while NATS is unreachable or it drains.
    const health = createDependencyHealth((serving) => grpc.setServing(serving), log);
    const nc = await connectNats(config.NATS_URL, `longhaul-invoker-${config.invokerId}`, log, (up) => health.set("nats", up));
    const grpcPort = await grpc.start();
    const metricsServer = await serveMetrics(registry, config.INVOKER_METRICS_HOST, config.INVOKER_METRICS_PORT);

    // Runs handed over at submit on a Handoff stream, beside the dispatches.
    // Started before the heartbeat loop, which reads its ended streams.
    // At most a quarter of the call slots wait for handoffs: the rest stay free for
    // dispatches (retries, queued runs, runs of copies without a stream).
    const handoffCredits = Math.min(config.INVOKER_HANDOFF_CREDITS, Math.floor(config.INVOKER_MAX_IN_FLIGHT / 4));
    const handoff =
      handoffCredits > 0
        ? startHandoff({
            open: () => scheduler.openHandoff(),
            invokerId: config.invokerId,
            capacity,
            credits: handoffCredits,
            owned: () => invoker.ownedRuns(),
            take: (run, release) => {
              // The call joins the run's trace from its stored context (RunInvoker.hold).
              if (invoker.take(run, release)) heartbeats.nudge();
            },
            log,
          })
        : undefined;
    heartbeats.start();
    const cancels = subscribeCancels(nc, names, log, (runId) => invoker.cancel(runId));
    const consumer = await startDispatchConsumer({
      nc,
      names,
      capacity,
      log,
      streams: streamSettings(config),
      maxConcurrentClaims: config.INVOKER_MAX_CONCURRENT_CLAIMS,
      claim: async (d) => {
        const decision = await invoker.claim(d);
        heartbeats.nudge();
        return decision;
      },
    });
    // The consumer's backlog is the same for every copy: one copy (the metrics lease's holder) exports it.
    const metricsLease = await startLeaderLease(nc, {
      bucket: names.leaseBucket,
      key: "invoker-metrics",
      holder: `${hostname()}-${process.pid}`,
      log,
      replicas: config.LONGHAUL_NATS_REPLICAS,
    });
    // No API check (a request, the last step before ready, where one start-up
    // in CI stopped once): the manager only reads the consumer's backlog when
    // metrics are scraped.
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    registerConsumerPending(registry, jsm, names.dispatchStream, names.invokerConsumer, { exportIf: metricsLease.isLeader });
    health.started();

    return {
      ready: {
        grpc_port: grpcPort,
        metrics_port: metricsServer.port,
        max_in_flight: config.INVOKER_MAX_IN_FLIGHT,
        // At most a quarter of max_in_flight (0: runs come by dispatch only).
        handoff_credits: handoffCredits,
        grpc_tls: grpcTlsMode(tls),
      },
      closers: [
        { name: "handoff stream", close: async () => handoff?.stop() },
        { name: "dispatch consumer", close: () => consumer.stop() },
        {
          // Held runs finish or are released; sync calls get the same time.
          name: "calls in flight",
          close: async () => {
            draining.set(1);
            health.stopping();
            await Promise.all([invoker.drain(drainMs), grpc.stop(drainMs)]);
          },
        },
        { name: "heartbeats", close: () => heartbeats.stop() },
        { name: "cancel subscription", close: () => cancels.close() },
        { name: "metrics lease", close: () => metricsLease.stop() },
        { name: "nats", close: () => nc.drain() },
        { name: "scheduler client", close: async () => scheduler.close() },
        { name: "grpc tls reload", close: async () => tls?.close() },
        { name: "upstream agent", close: () => agent.close() },
        { name: "metrics server", close: () => metricsServer.close() },
      ],
      graceMs: drainMs + 20_000,
    };
  },
});
