import { createLogger } from "@longhaul/shared/logger";
import { shutdownTelemetry } from "@longhaul/shared/telemetry";
import { onShutdown } from "@longhaul/shared/service";
import { loadConfig } from "./config.js";
import { startNotifier } from "./service.js";

// Wiring only: config → logger → the service (service.ts) → signals.
const config = loadConfig(process.env);
const log = createLogger("notifier", config.LOG_LEVEL);
try {
  const notifier = await startNotifier(config, log);
  onShutdown(log, [
    { name: "notifier", close: () => notifier.stop() },
    { name: "telemetry", close: shutdownTelemetry },
  ]);
  log.info({ grpc_port: notifier.grpcPort, metrics_port: notifier.metricsPort }, "ready");
} catch (err) {
  log.fatal({ err }, "notifier failed to start");
  await shutdownTelemetry().catch(() => undefined);
  process.exit(1);
}
