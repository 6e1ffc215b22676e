import { createGrpcTls, grpcTlsMode } from "@longhaul/shared/grpc";
import { createRegistry, serveMetrics } from "@longhaul/shared/metrics";
import { runService } from "@longhaul/shared/service";
import { resultUrlKey } from "@longhaul/shared/result-url";
import { createAdminClient } from "./adapters/grpc/admin-client.js";
import { createInvokerClient } from "./adapters/grpc/invoker-client.js";
import { createNotifierClient } from "./adapters/grpc/notifier-client.js";
import { createSchedulerClients } from "./adapters/grpc/scheduler-client.js";
import { loadDashboardAssets } from "./adapters/http/dashboard-assets.js";
import { dashboardRoutes } from "./adapters/http/dashboard-routes.js";
import { docsRoutes, loadDocsAssets } from "./adapters/http/openapi-routes.js";
import { createHttpGateway } from "./adapters/http/server.js";
import { loadConfig } from "./config.js";
import { createAuthenticator } from "./core/auth.js";

/** Wiring only: gRPC clients → HTTP gateway. */
await runService({
  name: "ingress",
  loadConfig,
  async start(config, log) {
    const registry = createRegistry("ingress");

    // TLS (mutual with a CA) to every peer when LONGHAUL_GRPC_TLS_* is set; plaintext otherwise.
    const tls = createGrpcTls(config, log);
    const scheduler = createSchedulerClients(config.SCHEDULER_ADDR, config.LONGHAUL_INTERNAL_TOKEN, {
      tls,
      log,
      submitStreams: config.INGRESS_SUBMIT_STREAMS === "auto" ? undefined : config.INGRESS_SUBMIT_STREAMS,
    });
    const notifier = createNotifierClient(config.NOTIFIER_ADDR, config.LONGHAUL_INTERNAL_TOKEN, tls);
    const invoker = createInvokerClient(config.INVOKER_ADDR, config.LONGHAUL_INTERNAL_TOKEN, tls);
    const admin = createAdminClient(config.SCHEDULER_ADDR, tls);
    const authenticator = createAuthenticator(scheduler.keys, { cacheSeconds: config.INGRESS_AUTH_CACHE_SECONDS });
    const dashboard = config.INGRESS_DASHBOARD_ENABLED ? await loadDashboardAssets() : undefined;
    const docs = await loadDocsAssets();

    const gateway = createHttpGateway({
      log,
      registry,
      ports: { ...scheduler, admin, webhooks: notifier, invoker },
      authenticator,
      limits: {
        maxBodyBytes: config.LONGHAUL_MAX_BODY_BYTES,
        sseHeartbeatSeconds: config.INGRESS_SSE_HEARTBEAT_SECONDS,
        sseMaxSeconds: config.INGRESS_SSE_MAX_SECONDS,
        feedMaxWatched: config.INGRESS_EVENTS_MAX_WATCHED,
      },
      extraRoutes: () => [...docsRoutes(docs), ...(dashboard ? dashboardRoutes(dashboard) : [])],
      resultUrlKey: resultUrlKey(config.LONGHAUL_INTERNAL_TOKEN),
      keepAliveTimeoutMs: config.INGRESS_KEEP_ALIVE_TIMEOUT_MS,
    });
    const port = await gateway.listen(config.LONGHAUL_HTTP_HOST, config.LONGHAUL_HTTP_PORT);
    // Metrics name every project's apps: on their own port, never the public one.
    const metricsServer = await serveMetrics(registry, config.INGRESS_METRICS_HOST, config.INGRESS_METRICS_PORT);

    return {
      ready: {
        host: config.LONGHAUL_HTTP_HOST,
        port,
        metrics_port: metricsServer.port,
        publicUrl: config.LONGHAUL_PUBLIC_URL || undefined,
        dashboard: dashboard ? `/dashboard (assets ${dashboard.version})` : "off",
        grpc_tls: grpcTlsMode(tls),
      },
      closers: [
        { name: "http", close: () => gateway.close(config.INGRESS_SHUTDOWN_GRACE_MS) },
        { name: "metrics", close: () => metricsServer.close() },
        {
          name: "grpc-clients",
          close: async () => {
            scheduler.close();
            notifier.close();
            invoker.close();
            admin.close();
            tls?.close();
          },
        },
      ],
      graceMs: config.INGRESS_SHUTDOWN_GRACE_MS + 5_000,
    };
  },
});
