// Trace context with no exporter set (how most meshes run): no OpenTelemetry
// instrumentation is loaded, and Longhaul's own adapters carry W3C trace
// context on every hop. A run is still one trace: the client's traceparent
// (or a new trace when it sent none) reaches the app and the webhook, each
// from a Longhaul span of its own, and every log line about the run names it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let hook: Peer;
let api: ReturnType<typeof gateway>;

beforeAll(async () => {
  app = await startPeer();
  hook = await startPeer();
  // No OTEL_* variable: nothing is exported.
  mesh = await startTestMesh({ env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true" } });
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  expect((await api.putApp("plain", { url: app.url })).status).toBe(201);
});

afterAll(async () => {
  await mesh?.cleanup();
  await app?.close();
  await hook?.close();
});

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;

function parts(traceparent: unknown): { traceId: string; spanId: string } {
  const m = TRACEPARENT.exec(String(traceparent ?? ""));
  expect(m, `traceparent ${String(traceparent)}`).not.toBeNull();
  return { traceId: m![1]!, spanId: m![2]! };
}

/** The JSON log lines of `service` about `runId`. */
function linesAbout(service: "scheduler" | "invoker" | "notifier", runId: string): { trace_id?: string; msg: string }[] {
  return mesh
    .logs(service)
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { run_id?: string; trace_id?: string; msg: string })
    .filter((l) => l.run_id === runId);
}

async function asyncRun(path: string, headers: Record<string, string>): Promise<{ runId: string; appTp: unknown; hookTp: unknown }> {
  const before = { app: app.received.length, hook: hook.received.length };
  const submit = await api.call("POST", `/dev/plain${path}?async=true&webhookEndpoint=${encodeURIComponent(`${hook.url}${path}`)}`, "{}", {
    "content-type": "application/json",
    ...headers,
  });
  expect(submit.status).toBe(202);
  const runId: string = submit.json.run_id;
  await eventually(async () => app.received.length > before.app && hook.received.length > before.hook, 15_000, "app call and webhook");
  await eventually(async () => (await api.getRun(runId)).json?.webhook_state === "delivered", 10_000, "webhook delivered");
  const call = app.received.find((r) => r.url.startsWith(path));
  const delivery = hook.received.find((r) => r.url.startsWith(path));
  return { runId, appTp: call?.headers.traceparent, hookTp: delivery?.headers.traceparent };
}

describe("trace context without an exporter", () => {
  it("carries the client's trace to the app and the webhook, and into every log line about the run", async () => {
    const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const clientSpan = "00f067aa0ba902b7";
    const { runId, appTp, hookTp } = await asyncRun("/traced", { traceparent: `00-${clientTrace}-${clientSpan}-01` });

    const toApp = parts(appTp);
    const toHook = parts(hookTp);
    expect(toApp.traceId).toBe(clientTrace);
    expect(toHook.traceId).toBe(clientTrace);
    // Each is called from a span of Longhaul's own, not the client's.
    expect(toApp.spanId).not.toBe(clientSpan);
    expect(toHook.spanId).not.toBe(clientSpan);
    expect(toHook.spanId).not.toBe(toApp.spanId);

    await eventually(async () => linesAbout("notifier", runId).length > 0, 5_000, "the notifier's line about the run");
    for (const service of ["scheduler", "invoker", "notifier"] as const) {
      const lines = linesAbout(service, runId);
      expect(lines.length, `${service} logs about the run`).toBeGreaterThan(0);
      for (const line of lines) expect(line.trace_id, `${service}: "${line.msg}"`).toBe(clientTrace);
    }
  });

  it("starts a real trace for a request that brought none", async () => {
    const { runId, appTp, hookTp } = await asyncRun("/untraced", {});
    const toApp = parts(appTp);
    expect(toApp.traceId).not.toBe("0".repeat(32));
    expect(parts(hookTp).traceId).toBe(toApp.traceId);
    for (const line of linesAbout("scheduler", runId)) expect(line.trace_id).toBe(toApp.traceId);
  });

  it("carries the client's trace through a sync call", async () => {
    const clientTrace = "0af7651916cd43dd8448eb211c80319c";
    const before = app.received.length;
    const res = await api.call("POST", "/dev/plain/sync-traced", "{}", {
      "content-type": "application/json",
      traceparent: `00-${clientTrace}-b7ad6b7169203331-01`,
    });
    expect(res.status).toBe(200);
    const call = app.received.slice(before).find((r) => r.url.startsWith("/sync-traced"));
    expect(parts(call?.headers.traceparent).traceId).toBe(clientTrace);
    // One traceparent, not the client's passed through beside Longhaul's.
    expect(Array.isArray(call?.headers.traceparent)).toBe(false);
  });
});
