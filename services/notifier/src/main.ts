import { runService } from "@longhaul/shared/service";
import { loadConfig } from "./config.js";
import { startNotifier } from "./service.js";

/** Wiring only: the service (service.ts, which the tests start in-process too). */
await runService({
  name: "notifier",
  loadConfig,
  async start(config, log) {
    const notifier = await startNotifier(config, log);
    return {
      ready: { grpc_port: notifier.grpcPort, metrics_port: notifier.metricsPort, grpc_tls: notifier.grpcTls },
      closers: [{ name: "notifier", close: () => notifier.stop() }],
    };
  },
});
