import {
  ROOT_CONTEXT,
  context,
  propagation,
  trace,
  SpanKind,
  SpanStatusCode,
  type Attributes,
  type Context,
  type Span,
} from "@opentelemetry/api";

export { ROOT_CONTEXT, context, propagation, trace, SpanKind, SpanStatusCode };
export type { Attributes, Context, Span };

/** Flushes and stops the SDK started by otel-register.mjs, if it runs. */
export async function shutdownTelemetry(): Promise<void> {
  const sdk = (globalThis as Record<symbol, { shutdown(): Promise<void> } | undefined>)[
    Symbol.for("longhaul.otel.sdk")
  ];
  await sdk?.shutdown();
}

/** The tracer of Longhaul's own spans. */
export const tracer = trace.getTracer("longhaul");

/**
 * Attribute names of Longhaul's spans ("spans carry the run id, app,
 * attempt and outcome"). One spelling everywhere, so a trace backend can
 * search every hop of a run by `longhaul.run_id`.
 */
export const RunAttr = {
  runId: "longhaul.run_id",
  project: "longhaul.project",
  app: "longhaul.app",
  attempt: "longhaul.attempt",
  /** How the hop ended: a run status, a call outcome, a webhook state. */
  outcome: "longhaul.outcome",
} as const;

/**
 * True when OpenTelemetry's HTTP, gRPC and undici instrumentations run (an
 * exporter is set: otel-register.mjs): they carry trace context on every hop
 * themselves. Without them Longhaul's adapters do it ({@link injectTrace},
 * {@link startServerSpan}), which costs a header and a span id per hop.
 */
export function instrumented(): boolean {
  return (globalThis as Record<symbol, unknown>)[Symbol.for("longhaul.otel.instrumented")] === true;
}

/**
 * Sets the W3C trace headers of `ctx` through `set` on an outgoing HTTP
 * request or gRPC call, unless the instrumentations do it (they add their
 * client span's). With no SDK installed this sets nothing.
 */
export function injectTrace(set: (name: string, value: string) => void, ctx: Context = context.active()): void {
  if (instrumented()) return;
  propagation.inject(ctx, undefined, { set: (_carrier, name, value) => set(name, value) });
}

/**
 * A server span for an incoming HTTP request or gRPC call (`get` reads its
 * headers or metadata), under the caller's trace when it sent one, and the
 * context to run the handler in; undefined when the instrumentations make
 * their own. Without an exporter the span records nothing: it gives the hop
 * its trace id (a new one when the caller sent none) for logs and onward calls.
 */
export function startServerSpan(name: string, get: (name: string) => string | undefined): { span: Span; context: Context } | undefined {
  if (instrumented()) return undefined;
  const parent = propagation.extract(context.active(), undefined, {
    get: (_carrier, key) => get(key),
    keys: () => [],
  });
  const span = tracer.startSpan(name, { kind: SpanKind.SERVER }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/** The W3C `traceparent` / `tracestate` of a context, for storing beside a run. */
export function traceCarrier(ctx: Context = context.active()): { traceparent: string; tracestate: string } {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return { traceparent: carrier.traceparent ?? "", tracestate: carrier.tracestate ?? "" };
}

/** The context a stored `traceparent` names, to continue a run's trace later. */
export function contextFromCarrier(traceparent: string, tracestate = ""): Context {
  if (!traceparent) return context.active();
  return propagation.extract(context.active(), tracestate ? { traceparent, tracestate } : { traceparent });
}

/**
 * The context in which to start a span of a run whose trace is `traceparent`
 * (stored at submit): the active one when it already belongs to that trace
 * (a message or RPC of this run carried it, so the span lands under that
 * hop), else the stored one. Work done for a run from elsewhere (a reconciler
 * pass, another run's completion freeing a slot, a retry timer) thus still
 * joins the run's own trace: one run is one trace.
 */
export function runContext(traceparent: string, tracestate = ""): Context {
  const active = trace.getSpanContext(context.active());
  const traceId = traceparent.split("-")[1];
  if (!traceId || (active && trace.isSpanContextValid(active) && active.traceId === traceId)) return context.active();
  return contextFromCarrier(traceparent, tracestate);
}

/**
 * Runs `fn` in a new active span and ends it after; an error thrown marks the
 * span failed (and is rethrown unchanged).
 */
export async function inSpan<T>(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = options.parent ?? context.active();
  const span = tracer.startSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes ?? {} }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    span.recordException(err instanceof Error ? err : String(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    throw err;
  } finally {
    span.end();
  }
}

/**
 * Attributes of a span that stands for one gRPC call, as
 * @opentelemetry/instrumentation-grpc names them (semantic conventions for
 * RPC): `rpc.system`, `rpc.service`, `rpc.method`. A message of a stream that
 * carries such a call (SubmitRuns carries SubmitRun) gets its span named and
 * attributed like the call, so traces read the same either way.
 */
export function rpcSpanAttributes(path: string): Attributes {
  const [, service = "", method = ""] = path.split("/");
  return { "rpc.system": "grpc", "rpc.service": service, "rpc.method": method };
}

/** The span name instrumentation-grpc gives a call of `path` (`/pkg.Service/Method` → `grpc.pkg.Service/Method`). */
export function rpcSpanName(path: string): string {
  return `grpc.${path.replace("/", "")}`;
}

/**
 * Name and attributes of the span of one message of a stream that carries a
 * call of `path` (SubmitRuns carries RunService/SubmitRun): named and
 * attributed as the call's own span, plus `longhaul.via`, the stream method
 * it travelled on. The client and server sides use the same.
 */
export function streamedCallSpan(path: string, via: string): { name: string; attributes: Attributes } {
  return { name: rpcSpanName(path), attributes: { ...rpcSpanAttributes(path), "longhaul.via": via } };
}

/**
 * Ends a span standing for a gRPC call as instrumentation-grpc ends its own:
 * `rpc.grpc.status_code`, and on failure status ERROR with the error's name and message.
 */
export function endRpcSpan(span: Span, grpcCode: number, err?: { name: string; message: string }): void {
  span.setAttribute("rpc.grpc.status_code", grpcCode);
  if (grpcCode !== 0) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: err?.message ?? "" });
    if (err) span.setAttributes({ "grpc.error_name": err.name, "grpc.error_message": err.message });
  }
  span.end();
}
