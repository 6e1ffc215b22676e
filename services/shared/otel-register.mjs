// Starts OpenTelemetry before the service's own modules load: with ESM the
// instrumentation loader hook must be registered first, or gRPC and HTTP spans
// are silently missing (TOOLCHAIN.md). Run a service as
//   node --import @longhaul/shared/otel-register dist/main.js
//
// Configured only by the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, ...;
// OTEL_SDK_DISABLED=true turns it all off). Traces are exported when an OTLP
// endpoint is set or OTEL_TRACES_EXPORTER names an exporter.
//
// With no endpoint a tracer provider is still installed, with an always-off
// sampler and no span processor: the SDK would otherwise install none
// (exporter "none") and a request arriving without a traceparent would get the
// all-zero trace id, so logs would carry no usable trace id. This way every
// request still gets a real trace id, propagated (HTTP, gRPC, NATS, the app,
// the webhook) and written in its log lines, while spans are non-recording:
// no attributes gathered, nothing processed or exported (span work
// nobody reads cost a fifth of each service's CPU per run). With an exporter,
// OTEL_TRACES_SAMPLER is honoured (parentbased_always_on by default).
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
const exporters = (env.OTEL_TRACES_EXPORTER ?? "")
  .split(",")
  .map((s) => s.trim())
  .filter((s) => s !== "" && s !== "none");
const exportTraces =
  exporters.length > 0 ||
  (!env.OTEL_TRACES_EXPORTER && Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT));
env.OTEL_METRICS_EXPORTER ??= "none"; // metrics are served by prom-client on /metrics
env.OTEL_LOGS_EXPORTER ??= "none"; // logs go to stdout as JSON

const { NodeSDK } = await import("@opentelemetry/sdk-node");
const { HttpInstrumentation } = await import("@opentelemetry/instrumentation-http");
const { GrpcInstrumentation } = await import("@opentelemetry/instrumentation-grpc");
const { PgInstrumentation } = exportTraces ? await import("@opentelemetry/instrumentation-pg") : {};
const { UndiciInstrumentation } = await import("@opentelemetry/instrumentation-undici");

const { AlwaysOffSampler } = await import("@opentelemetry/sdk-trace-base");

/** Records nothing: spans exist (ids, context) but are never sampled. */
const dropSpans = {
  onStart() {},
  onEnd() {},
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};

const sdk = new NodeSDK({
  instrumentations: [
    new HttpInstrumentation({
      // Scrapes and probes are not part of any run's trace.
      ignoreIncomingRequestHook: (req) => req.url === "/metrics" || req.url === "/healthz",
    }),
    // Health checks and reflection would fill traces with noise.
    new GrpcInstrumentation({ ignoreGrpcMethods: ["Check", "Watch", "ServerReflectionInfo"] }),
    // Query spans are only worth their cost when someone records them: with
    // nothing exported the pg hook did nothing useful and cost 3 % of the
    // scheduler's and notifier's CPU (trace context never flows through SQL).
    ...(exportTraces ? [new PgInstrumentation({ requireParentSpan: true })] : []),
    new UndiciInstrumentation(),
  ],
  // Undefined: the SDK builds the exporters OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_* name.
  ...(exportTraces ? {} : { spanProcessors: [dropSpans], sampler: new AlwaysOffSampler() }),
});
sdk.start();
globalThis[Symbol.for("longhaul.otel.sdk")] = sdk;
