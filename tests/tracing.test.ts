// Traces: the four services as processes export OTLP/HTTP (JSON) to a
// receiver of the test's own on loopback. One async run with a webhook must be
// one trace, from the gateway's request through the scheduler, the invoker's
// held call to the app, the result, and the notifier's delivery; the app and
// the webhook receiver must see a traceparent of that trace.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "./helpers/otlp-receiver.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let otlp: OtlpReceiver;
let app: Peer;
let hook: Peer;
let api: ReturnType<typeof gateway>;

beforeAll(async () => {
  otlp = await startOtlpReceiver();
  app = await startPeer();
  hook = await startPeer();
  mesh = await startTestMesh({
    env: {
      LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true",
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_TRACES_SAMPLER: "parentbased_always_on",
      // Export within a fifth of a second, so the test waits little.
      OTEL_BSP_SCHEDULE_DELAY: "200",
    },
  });
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  expect((await api.putApp("traced", { url: app.url })).status).toBe(201);
});

afterAll(async () => {
  await mesh?.cleanup();
  await app?.close();
  await hook?.close();
  await otlp?.close();
});

const traceIdOf = (traceparent: unknown) => String(traceparent ?? "").split("-")[1] ?? "";
const SERVICES = ["longhaul-ingress", "longhaul-scheduler", "longhaul-invoker", "longhaul-notifier"];

/** The spans of one trace as an indented tree, children in start order (for failure messages and the report). */
function renderTree(spans: ReceivedSpan[]): string {
  // Postgres spans (dozens) are left out of the picture; their children keep their place.
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const shown = (s: ReceivedSpan) => !s.name.startsWith("pg");
  const visibleParent = (s: ReceivedSpan): string => {
    let p = byId.get(s.parentSpanId);
    while (p && !shown(p)) p = byId.get(p.parentSpanId);
    return p?.spanId ?? "";
  };
  const byParent = new Map<string, ReceivedSpan[]>();
  for (const s of spans.filter(shown)) {
    const key = visibleParent(s);
    byParent.set(key, [...(byParent.get(key) ?? []), s]);
  }
  const lines: string[] = [];
  const walk = (parent: string, depth: number) => {
    for (const s of (byParent.get(parent) ?? []).sort((a, b) => (a.startNs < b.startNs ? -1 : 1))) {
      const ms = Number(s.endNs - s.startNs) / 1e6;
      lines.push(`${"  ".repeat(depth)}${s.service.replace("longhaul-", "")}: ${s.name} (kind ${s.kind}, ${ms.toFixed(1)} ms)`);
      walk(s.spanId, depth + 1);
    }
  };
  walk("", 0);
  return lines.join("\n");
}

/** The chain of spans from the root down to `span`. */
function ancestry(spans: ReceivedSpan[], span: ReceivedSpan): ReceivedSpan[] {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const chain = [span];
  for (let p = byId.get(span.parentSpanId); p; p = byId.get(p.parentSpanId)) chain.unshift(p);
  return chain;
}

describe("tracing", () => {
  it("makes one async run with a webhook one trace across all four services", async () => {
    // The gateway's first submit opens its SubmitRuns stream (and goes by a
    // unary call itself): the traced submit below travels on the stream.
    await eventually(async () => {
      expect((await api.call("POST", "/dev/traced/warm?async=true", "{}")).status).toBe(202);
      const metrics = await (await fetch(mesh.metricsUrls.scheduler[0]!)).text();
      return /^longhaul_stream_submits_total\{[^}]*code="ok"[^}]*\} [1-9]/m.test(metrics);
    }, 10_000, "a submit on the gateway's stream");
    const submit = await api.call(
      "POST",
      `/dev/traced/work?async=true&webhookEndpoint=${encodeURIComponent(`${hook.url}/hook`)}`,
      '{"n":1}',
      { "content-type": "application/json" },
    );
    expect(submit.status).toBe(202);
    const runId: string = submit.json.run_id;

    const [call] = await app.waitFor(1, "/work");
    const [delivery] = await hook.waitFor(1, "/hook");
    const traceId = traceIdOf(call!.headers.traceparent);
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(traceId).not.toBe("0".repeat(32));
    // The webhook receiver sees the same trace as the app.
    expect(traceIdOf(delivery!.headers.traceparent)).toBe(traceId);
    await eventually(async () => (await api.getRun(runId)).json?.webhook_state === "delivered", 10_000, "webhook delivered");

    // Each service exports in its own batches: wait until the trace is whole
    // (every service, the last hop, the spans the app and the receiver were
    // called from, and no span whose parent has not arrived yet).
    const appCaller = String(call!.headers.traceparent).split("-")[2];
    const hookCaller = String(delivery!.headers.traceparent).split("-")[2];
    const spans = (
      await otlp.waitFor(
        (all) => {
          const mine = all.filter((s) => s.traceId === traceId);
          const ids = new Set(mine.map((s) => s.spanId));
          return (
            SERVICES.every((svc) => mine.some((s) => s.service === svc)) &&
            mine.some((s) => s.name === "webhook attempt") &&
            ids.has(appCaller!) &&
            ids.has(hookCaller!) &&
            mine.filter((s) => !ids.has(s.parentSpanId)).length === 1
          );
        },
        20_000,
        `the whole trace ${traceId} from all four services`,
      )
    ).filter((s) => s.traceId === traceId);
    const tree = renderTree(spans);
    console.log(`trace ${traceId} (run ${runId}), ${spans.length} spans:\n${tree}`);
    expect(otlp.rejected).toEqual([]);

    // One root: the gateway's request.
    const ids = new Set(spans.map((s) => s.spanId));
    const roots = spans.filter((s) => !ids.has(s.parentSpanId));
    expect(roots.map((s) => `${s.service}:${s.kind}`), tree).toEqual(["longhaul-ingress:2"]);
    const root = roots[0]!;
    expect(root.attributes["longhaul.run_id"]).toBe(runId);

    const one = (service: string, name: string, kind?: number) => {
      const found = spans.filter((s) => s.service === service && s.name === name && (kind === undefined || s.kind === kind));
      expect(found, `${service} ${name}\n${tree}`).toHaveLength(1);
      return found[0]!;
    };
    // A dispatch may be redelivered (or republished) on a slow machine: the first one counts.
    const first = (service: string, name: string, kind: number) => {
      const found = spans.filter((s) => s.service === service && s.name === name && s.kind === kind).sort((a, b) => (a.startNs < b.startNs ? -1 : 1));
      expect(found.length, `${service} ${name}\n${tree}`).toBeGreaterThan(0);
      return found[0]!;
    };
    // The submit as the gateway and the scheduler see it: named and attributed
    // as the grpc instrumentation names a RunService/SubmitRun call, though it
    // is a message on a SubmitRuns stream (`longhaul.via`).
    const submitClient = one("longhaul-ingress", "grpc.longhaul.v1.RunService/SubmitRun", 3);
    const submitServer = one("longhaul-scheduler", "grpc.longhaul.v1.RunService/SubmitRun", 2);
    for (const s of [submitClient, submitServer]) {
      expect(s.attributes, s.service).toMatchObject({
        "rpc.system": "grpc",
        "rpc.service": "longhaul.v1.RunService",
        "rpc.method": "SubmitRun",
        "rpc.grpc.status_code": 0,
        "longhaul.via": "SubmitRuns",
      });
    }
    expect(submitClient.parentSpanId).toBe(root.spanId);
    expect(submitServer.parentSpanId).toBe(submitClient.spanId);
    const submitSpan = one("longhaul-scheduler", "run.submit");
    expect(submitSpan.parentSpanId).toBe(submitServer.spanId);
    const callSpan = one("longhaul-invoker", "run.call", 3);
    const complete = one("longhaul-scheduler", "run.complete", 2);
    const finished = one("longhaul-scheduler", "run.finished", 4);
    const attempt = one("longhaul-notifier", "webhook attempt");

    // The hops in order, each under the one before it.
    const chain = (s: ReceivedSpan) => ancestry(spans, s).map((x) => x.spanId);
    const under = (child: ReceivedSpan, parent: ReceivedSpan) =>
      expect(chain(child), `${child.name} under ${parent.name}\n${tree}`).toContain(parent.spanId);
    under(submitSpan, root);
    // The run reached the invoker on its Handoff stream (started in the
    // submit's commit), or, when the invoker's stream was not open yet, as a
    // dispatch it claimed.
    const handedOff = spans.some((s) => s.name === "run.handoff");
    let hop: ReceivedSpan;
    let order: ReceivedSpan[];
    if (handedOff) {
      hop = one("longhaul-scheduler", "run.handoff", 4);
      expect(spans.filter((s) => s.name === "run.dispatch" || s.name === "run.claim"), tree).toEqual([]);
      order = [root, submitSpan, hop, callSpan, complete, finished, attempt];
    } else {
      hop = first("longhaul-scheduler", "run.dispatch", 4);
      const claim = first("longhaul-scheduler", "run.claim", 2);
      under(claim, hop);
      order = [root, submitSpan, hop, claim, callSpan, complete, finished, attempt];
    }
    under(hop, submitSpan);
    under(callSpan, hop);
    under(complete, hop);
    under(finished, complete);
    under(attempt, finished);
    for (let i = 1; i < order.length; i++) {
      expect(order[i]!.startNs >= order[i - 1]!.startNs, `${order[i]!.name} starts after ${order[i - 1]!.name}`).toBe(true);
    }
    // The call is reported once the app answered: the hold ends before CompleteRun starts.
    expect(callSpan.endNs <= complete.startNs).toBe(true);

    // The app saw the invoker's HTTP client span under run.call; the webhook receiver the notifier's under its attempt.
    const appParent = spans.find((s) => s.spanId === appCaller);
    expect(appParent?.service).toBe("longhaul-invoker");
    expect(appParent?.parentSpanId).toBe(callSpan.spanId);
    const hookParent = spans.find((s) => s.spanId === hookCaller);
    expect(hookParent?.service).toBe("longhaul-notifier");
    expect(hookParent?.parentSpanId).toBe(attempt.spanId);

    // Run id, app, attempt and outcome on the run's own spans.
    for (const s of [submitSpan, hop, callSpan, finished, attempt]) {
      expect(s.attributes["longhaul.run_id"], s.name).toBe(runId);
      expect(s.attributes["longhaul.app"], s.name).toBe("traced");
    }
    expect(hop.attributes["longhaul.attempt"]).toBe(1);
    expect(callSpan.attributes).toMatchObject({ "longhaul.attempt": 1, "longhaul.outcome": "succeeded", "http.response.status_code": 200 });
    expect(finished.attributes["longhaul.outcome"]).toBe("succeeded");
    expect(attempt.attributes).toMatchObject({ "longhaul.outcome": "delivered", "longhaul.webhook_attempt": 1 });

    // Every log line about the run carries the run's trace id; no secret reaches any log.
    for (const name of ["ingress", "scheduler", "invoker", "notifier"] as const) {
      const text = mesh.logs(name);
      for (const secret of [mesh.apiKey, mesh.internalToken]) expect(text.includes(secret), `${name} logs a secret`).toBe(false);
      const lines = text
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { run_id?: string; trace_id?: string; msg: string });
      const about = lines.filter((l) => l.run_id === runId);
      // The gateway logs requests, not runs; the other three log each step of the run.
      if (name !== "ingress") expect(about.length, `${name} logs about the run`).toBeGreaterThan(0);
      for (const line of about) expect(line.trace_id, `${name}: "${line.msg}"`).toBe(traceId);
    }
  });
});
