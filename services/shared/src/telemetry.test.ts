import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { streamedCallSpan } from "./telemetry.js";

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL("../../..", import.meta.url));

/** Runs an ES module script as the services start (node --import otel-register), with no OTEL_* variable; its stdout and stderr. */
function runUnderOtelRegister(script: string): Promise<{ stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OTEL_")));
  return run(process.execPath, ["--import", "@longhaul/shared/otel-register", "--input-type=module", "-e", script], {
    cwd: repoRoot,
    env,
    timeout: 30_000,
  });
}

// A process started as the services are (node --import otel-register), with no
// OTEL_* variable at all: nothing is exported and spans are not even recorded
// (no span work when nobody listens), yet they get real ids, logs
// carry them and NATS headers propagate them (the all-zero trace id seen when
// the SDK installed no tracer provider must not come back).
const script = `
import { createLogger } from "@longhaul/shared/logger";
import { inSpan, runContext, traceCarrier, context, trace } from "@longhaul/shared/telemetry";
import { traceHeaders } from "@longhaul/shared/nats";
const log = createLogger("probe");
await inSpan("probe", {}, async (span) => {
  log.info("inside");
  const headers = traceHeaders();
  const stored = traceCarrier().traceparent;
  console.log(JSON.stringify({ recording: span.isRecording(), header: headers.get("traceparent"), stored }));
});
// Later, outside any span: a stored traceparent still names the run's trace.
const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
context.with(runContext(tp), () => log.info({ run_id: "r" }, "about the run"));
`;

describe("otel-register without an endpoint", () => {
  it("installs a tracer provider: real trace ids in spans, logs and message headers", async () => {
    const { stdout, stderr } = await runUnderOtelRegister(script);
    expect(stderr).toBe("");
    const lines = stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const inside = lines.find((l) => l.msg === "inside")!;
    const probe = lines.find((l) => "header" in l)!;
    const about = lines.find((l) => l.msg === "about the run")!;
    expect(inside.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(inside.trace_id).not.toBe("0".repeat(32));
    expect(probe.recording).toBe(false);
    expect(String(probe.header).split("-")[1]).toBe(inside.trace_id);
    expect(String(probe.stored).split("-")[1]).toBe(inside.trace_id);
    expect(about.trace_id).toBe("0af7651916cd43dd8448eb211c80319c");
  });
});

// The contexts the services' context manager hands out keep their methods
// on a prototype (otel-register.mjs, LeanContext): still immutable values,
// still the empty context outside any `with`, ROOT_CONTEXT included.
const contexts = `
import { createContextKey } from "@opentelemetry/api";
import { ROOT_CONTEXT, context, trace } from "@longhaul/shared/telemetry";
const k = createContextKey("k");
const root = context.active();
const a = root.setValue(k, 1);
const b = a.setValue(k, 2);
const c = b.deleteValue(k);
const span = trace.wrapSpanContext({ traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", traceFlags: 1 });
const inWith = context.with(trace.setSpan(root, span), () => trace.getSpanContext(context.active())?.traceId);
const underRoot = context.with(ROOT_CONTEXT, () => context.active());
console.log(JSON.stringify({
  values: [root.getValue(k) ?? null, a.getValue(k), b.getValue(k), c.getValue(k) ?? null],
  ownClosures: Object.getOwnPropertyNames(a).filter((p) => typeof a[p] === "function"),
  inWith,
  afterWith: context.active() === root,
  underRootIsLean: underRoot === root,
}));
`;

describe("otel-register's contexts", () => {
  it("are immutable values with their methods on a prototype, and the empty one is the same everywhere", async () => {
    const { stdout, stderr } = await runUnderOtelRegister(contexts);
    expect(stderr).toBe("");
    expect(JSON.parse(stdout.trim())).toEqual({
      values: [null, 1, 2, null],
      ownClosures: [],
      inWith: "0af7651916cd43dd8448eb211c80319c",
      afterWith: true,
      underRootIsLean: true,
    });
  });
});

describe("streamedCallSpan", () => {
  it("names a stream message's span as instrumentation-grpc names the call it carries, plus the stream it went by", () => {
    expect(streamedCallSpan("/longhaul.v1.RunService/SubmitRun", "SubmitRuns")).toEqual({
      name: "grpc.longhaul.v1.RunService/SubmitRun",
      attributes: { "rpc.system": "grpc", "rpc.service": "longhaul.v1.RunService", "rpc.method": "SubmitRun", "longhaul.via": "SubmitRuns" },
    });
  });
});
