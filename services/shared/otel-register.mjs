// Starts OpenTelemetry before the service's own modules load: with ESM the
// instrumentation loader hook must be registered first, or gRPC and HTTP spans
// are silently missing (TOOLCHAIN.md). Run a service as
//   node --import @longhaul/shared/otel-register dist/main.js
// Configured only by the standard OTEL_* variables; with no OTLP endpoint set,
// nothing is exported and context still propagates.
import { register } from "node:module";
import path from "node:path";

register("@opentelemetry/instrumentation/hook.mjs", import.meta.url);

const env = process.env;
if (!env.OTEL_SERVICE_NAME) {
  // services/<name>/dist/main.js → longhaul-<name>
  const parts = path.resolve(process.argv[1] ?? "").split(path.sep);
  const at = parts.lastIndexOf("services");
  env.OTEL_SERVICE_NAME = at >= 0 && parts[at + 1] ? `longhaul-${parts[at + 1]}` : "longhaul";
}
if (!env.OTEL_TRACES_EXPORTER && !env.OTEL_EXPORTER_OTLP_ENDPOINT && !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
  env.OTEL_TRACES_EXPORTER = "none";
}
env.OTEL_METRICS_EXPORTER ??= "none"; // metrics are served by prom-client on /metrics
env.OTEL_LOGS_EXPORTER ??= "none"; // logs go to stdout as JSON

const { NodeSDK } = await import("@opentelemetry/sdk-node");
const { HttpInstrumentation } = await import("@opentelemetry/instrumentation-http");
const { GrpcInstrumentation } = await import("@opentelemetry/instrumentation-grpc");
const { PgInstrumentation } = await import("@opentelemetry/instrumentation-pg");
const { UndiciInstrumentation } = await import("@opentelemetry/instrumentation-undici");

const sdk = new NodeSDK({
  instrumentations: [
    new HttpInstrumentation({
      // /metrics scrapes are not part of any run's trace.
      ignoreIncomingRequestHook: (req) => req.url === "/metrics",
    }),
    new GrpcInstrumentation({ ignoreGrpcMethods: ["Check", "Watch", "ServerReflectionInfo"] }),
    new PgInstrumentation({ requireParentSpan: true }),
    new UndiciInstrumentation(),
  ],
});
sdk.start();
globalThis[Symbol.for("longhaul.otel.sdk")] = sdk;
