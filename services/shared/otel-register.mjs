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
// With an exporter, the HTTP, gRPC, undici and pg instrumentations run, and
// OTEL_TRACES_SAMPLER is honoured (parentbased_always_on by default).
//
// With no exporter, no instrumentation is loaded (they cost 10-20 % of each
// service's CPU per run for spans nobody records), but a tracer provider is
// still installed, with an always-off sampler and no span processor, beside
// the W3C propagator and the async context manager. Longhaul's own adapters
// then carry trace context on every hop themselves (@longhaul/shared/telemetry
// `injectTrace` / `startServerSpan`: HTTP in and out, gRPC metadata, NATS
// headers), so every request still gets a real trace id (without a provider
// a request arriving without a traceparent would get the all-zero one),
// propagated to the app and the webhook and written in its log lines, while
// spans are non-recording: nothing gathered, processed or exported.
import { register } from "node:module";
import path from "node:path";

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

// The loader hook only serves the instrumentations.
if (exportTraces) register("@opentelemetry/instrumentation/hook.mjs", import.meta.url);

const { NodeSDK } = await import("@opentelemetry/sdk-node");
const { AlwaysOffSampler } = await import("@opentelemetry/sdk-trace-base");
const { AsyncLocalStorageContextManager } = await import("@opentelemetry/context-async-hooks");
const { ROOT_CONTEXT } = await import("@opentelemetry/api");

/**
 * A context with its methods on its prototype. The API's own (BaseContext)
 * gives every context three closures over itself, and V8 keeps objects with
 * a closure over themselves past a scavenge in code below TurboFan, where a
 * request path mostly runs: a context or two per request were a fifth of
 * what the gateway's scavenges copied (tests/bench/README.md, "Thirteenth
 * pass"; `node tests/bench/gc-closures.mjs`).
 */
class LeanContext {
  constructor(values) {
    this.values = values;
  }
  getValue(key) {
    return this.values.get(key);
  }
  setValue(key, value) {
    const values = new Map(this.values);
    values.set(key, value);
    return new LeanContext(values);
  }
  deleteValue(key) {
    const values = new Map(this.values);
    values.delete(key);
    return new LeanContext(values);
  }
}
const LEAN_ROOT = new LeanContext(new Map());

/** The SDK's default context manager, whose empty context is a LeanContext: every context derived from it is one too. */
class LeanRootContextManager extends AsyncLocalStorageContextManager {
  active() {
    const ctx = super.active();
    return ctx === ROOT_CONTEXT ? LEAN_ROOT : ctx;
  }
}

/** The instrumentations, only when spans are exported. */
async function instrumentations() {
  const { HttpInstrumentation } = await import("@opentelemetry/instrumentation-http");
  const { GrpcInstrumentation } = await import("@opentelemetry/instrumentation-grpc");
  const { PgInstrumentation } = await import("@opentelemetry/instrumentation-pg");
  const { UndiciInstrumentation } = await import("@opentelemetry/instrumentation-undici");
  return [
    new HttpInstrumentation({
      // Scrapes and probes are not part of any run's trace.
      ignoreIncomingRequestHook: (req) => req.url === "/metrics" || req.url === "/healthz",
    }),
    // Health checks and reflection would fill traces with noise. SubmitRuns
    // is a stream that lives for many requests: each of its messages gets a
    // client and a server span of its own, named as the SubmitRun call it
    // carries (adapters/grpc/submit-streams.ts of the ingress and scheduler).
    new GrpcInstrumentation({ ignoreGrpcMethods: ["Check", "Watch", "ServerReflectionInfo", "SubmitRuns"] }),
    new PgInstrumentation({ requireParentSpan: true }),
    new UndiciInstrumentation(),
  ];
}

/** Records nothing: spans exist (ids, context) but are never sampled. */
const dropSpans = {
  onStart() {},
  onEnd() {},
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};

const sdk = new NodeSDK({
  contextManager: new LeanRootContextManager(),
  instrumentations: exportTraces ? await instrumentations() : [],
  // Undefined: the SDK builds the exporters OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_* name.
  ...(exportTraces ? {} : { spanProcessors: [dropSpans], sampler: new AlwaysOffSampler() }),
});
sdk.start();
globalThis[Symbol.for("longhaul.otel.sdk")] = sdk;
// Read by @longhaul/shared/telemetry: the instrumentations carry trace context, the adapters need not.
globalThis[Symbol.for("longhaul.otel.instrumented")] = exportTraces && env.OTEL_SDK_DISABLED !== "true";
