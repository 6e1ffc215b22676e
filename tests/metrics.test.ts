// Metrics: every service serves Prometheus text on /metrics, and the
// counters, gauges and histograms move on a real run through the four
// services as processes (real app, real webhook receiver, real Postgres and
// JetStream).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type ServiceName, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let hook: Peer;
let api: ReturnType<typeof gateway>;

beforeAll(async () => {
  app = await startPeer();
  hook = await startPeer();
  mesh = await startTestMesh({
    env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true" },
    serviceEnv: { invoker: { INVOKER_MAX_IN_FLIGHT: "1" } },
  });
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  // One call at a time: a second run waits in the queue while the first is held.
  expect((await api.putApp("metered", { url: app.url, max_concurrency: 1 })).status).toBe(201);
});

afterAll(async () => {
  await mesh?.cleanup();
  await app?.close();
  await hook?.close();
});

/** One sample of the text exposition format: `name{label="v",...} value`. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

async function scrape(service: ServiceName): Promise<Sample[]> {
  const res = await fetch(mesh.metricsUrls[service][0]!);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return parseExposition(await res.text());
}

/** The value of the one sample named `name` whose labels include `labels`; 0 when absent. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value ?? 0;
}

const has = (samples: Sample[], name: string) => samples.some((s) => s.name === name);

describe("/metrics", () => {
  it("serves process metrics on every service", async () => {
    for (const service of ["scheduler", "invoker", "notifier", "ingress"] as const) {
      const samples = await scrape(service);
      expect(has(samples, "process_cpu_user_seconds_total"), service).toBe(true);
      expect(has(samples, "nodejs_eventloop_lag_seconds"), service).toBe(true);
      expect(samples.find((s) => s.name === "process_resident_memory_bytes")?.labels.service).toBe(service);
    }
    // The gateway's metrics are on INGRESS_METRICS_PORT only: the public port has no /metrics.
    expect(mesh.metricsUrls.ingress[0]).not.toContain(mesh.ingressUrl);
    expect((await fetch(`${mesh.ingressUrl}/metrics`)).status).toBe(404);
  });

  it("moves on real runs: accepted, queued, in flight, delays, finished, webhook attempts, consumer backlog", async () => {
    const before = {
      scheduler: await scrape("scheduler"),
      invoker: await scrape("invoker"),
      notifier: await scrape("notifier"),
      ingress: await scrape("ingress"),
    };
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    app.handle(async (_req, res) => {
      await released;
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"done":true}');
    });
    const hookUrl = encodeURIComponent(`${hook.url}/hook`);
    const first = await api.call("POST", `/dev/metered/job?async=true&webhookEndpoint=${hookUrl}`, "{}");
    const second = await api.call("POST", `/dev/metered/job?async=true&webhookEndpoint=${hookUrl}`, "{}");
    expect([first.status, second.status]).toEqual([202, 202]);
    await app.waitFor(1, "/job");

    // While the first call is held: one in flight, one queued for this app.
    await eventually(async () => {
      const s = await scrape("scheduler");
      return (
        value(s, "longhaul_queue_depth", { app: "metered", state: "queued" }) === 1 &&
        value(s, "longhaul_queue_depth", { app: "metered", state: "in_flight" }) === 1
      );
    }, 10_000, "queue depth queued=1 in_flight=1");
    const holding = await scrape("invoker");
    expect(value(holding, "longhaul_invoker_calls_in_flight", { mode: "async" })).toBe(1);

    release();
    await api.finished(first.json.run_id);
    await api.finished(second.json.run_id);
    await hook.waitFor(2, "/hook");
    await eventually(async () => (await api.getRun(second.json.run_id)).json?.webhook_state === "delivered", 10_000, "webhooks delivered");

    const after = {
      scheduler: await scrape("scheduler"),
      invoker: await scrape("invoker"),
      notifier: await scrape("notifier"),
      ingress: await scrape("ingress"),
    };
    const moved = (service: keyof typeof after, name: string, labels: Record<string, string> = {}) =>
      value(after[service], name, labels) - value(before[service], name, labels);

    // Scheduler: accepted and finished by app and outcome, both delays, queue drained.
    expect(moved("scheduler", "longhaul_runs_accepted_total", { app: "metered" })).toBe(2);
    expect(moved("scheduler", "longhaul_runs_finished_total", { app: "metered", status: "succeeded" })).toBe(2);
    expect(moved("scheduler", "longhaul_run_dispatch_delay_seconds_count")).toBe(2);
    expect(moved("scheduler", "longhaul_run_start_delay_seconds_count")).toBe(2);
    // The second run waited in the queue for the first one's slot: its accept → dispatch is not zero.
    expect(value(after.scheduler, "longhaul_run_dispatch_delay_seconds_sum")).toBeGreaterThan(0);
    expect(value(after.scheduler, "longhaul_queue_depth", { app: "metered", state: "queued" })).toBe(0);
    expect(value(after.scheduler, "longhaul_queue_depth", { app: "metered", state: "in_flight" })).toBe(0);

    // Invoker: calls by outcome, nothing in flight, the dispatch consumer's backlog read from JetStream.
    expect(moved("invoker", "longhaul_invoker_calls_total", { mode: "async", outcome: "succeeded" })).toBe(2);
    expect(moved("invoker", "longhaul_invoker_call_duration_seconds_count", { mode: "async", outcome: "succeeded" })).toBe(2);
    expect(value(after.invoker, "longhaul_invoker_calls_in_flight", { mode: "async" })).toBe(0);
    const dispatchStream = `${mesh.natsPrefix.toUpperCase()}_DISPATCH`;
    expect(after.invoker.find((s) => s.name === "longhaul_jetstream_consumer_pending")?.labels).toMatchObject({
      stream: dispatchStream,
      consumer: "invoker",
    });
    expect(value(after.invoker, "longhaul_jetstream_consumer_pending", { stream: dispatchStream })).toBe(0);
    expect(value(after.invoker, "longhaul_jetstream_consumer_ack_pending", { stream: dispatchStream })).toBe(0);

    // Notifier: webhook attempts by outcome, the events consumer's backlog.
    expect(moved("notifier", "longhaul_webhook_attempts_total", { outcome: "delivered" })).toBe(2);
    const eventsStream = `${mesh.natsPrefix.toUpperCase()}_EVENTS`;
    expect(value(after.notifier, "longhaul_jetstream_consumer_pending", { stream: eventsStream, consumer: "notifier" })).toBe(0);
    expect(has(after.notifier, "longhaul_jetstream_consumer_pending")).toBe(true);

    // Ingress: its 202s.
    expect(moved("ingress", "longhaul_runs_accepted_total", { existing: "false" })).toBe(2);
  });

  it("counts the dispatch backlog JetStream holds while the invoker is at its limit", async () => {
    // This mesh's invoker holds one call at a time (INVOKER_MAX_IN_FLIGHT=1) and
    // pulls no more than it can hold: further dispatches wait in the stream.
    expect((await api.putApp("backlog", { url: app.url })).status).toBe(201);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    app.handle(async (_req, res) => {
      await released;
      res.writeHead(200).end("ok");
    });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await api.call("POST", "/dev/backlog/x?async=true", "{}")).json.run_id as string);
    await app.waitFor(1, "/x");
    const stream = `${mesh.natsPrefix.toUpperCase()}_DISPATCH`;
    await eventually(
      async () => value(await scrape("invoker"), "longhaul_jetstream_consumer_pending", { stream, consumer: "invoker" }) === 2,
      10_000,
      "2 dispatches pending in JetStream",
    );
    release();
    for (const id of ids) expect((await api.finished(id)).status).toBe("succeeded");
    expect(value(await scrape("invoker"), "longhaul_jetstream_consumer_pending", { stream })).toBe(0);
  });
});
