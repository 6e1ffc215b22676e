import { context, propagation, trace, SpanStatusCode, type Attributes, type Context, type Span } from "@opentelemetry/api";

export { context, propagation, trace, SpanStatusCode };
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
