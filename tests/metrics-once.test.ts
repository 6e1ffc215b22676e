// Gauges of state that every copy shares (the per-app queue depth, read from
// Postgres) are exported by one copy only, the holder of a NATS KV lease: a sum
// over two schedulers is the queue, not twice it. When that copy dies, the
// other takes the lease and exports them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let api: ReturnType<typeof gateway>;
let release: () => void = () => {};
const held = new Promise<void>((r) => (release = r));

beforeAll(async () => {
  app = await startPeer();
  app.handle(async (_req, res) => {
    await held;
    res.end("done");
  });
  mesh = await startTestMesh({ services: { scheduler: 2, invoker: 2, notifier: 2 } });
  api = gateway(mesh.ingressUrl!, mesh.apiKey);
});

afterAll(async () => {
  release();
  await mesh?.cleanup();
  await app?.close();
});

/** `longhaul_queue_depth{…app="<app>",state="<state>"}` of one copy, or undefined when it exports none. */
async function queued(metricsUrl: string, appName: string): Promise<number | undefined> {
  const text = await (await fetch(metricsUrl)).text();
  for (const line of text.split("\n")) {
    if (line.startsWith("longhaul_queue_depth{") && line.includes(`app="${appName}"`) && line.includes('state="queued"')) {
      return Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return undefined;
}

/** How many samples of `name` one copy exports. */
async function samples(metricsUrl: string, name: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  return text.split("\n").filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).length;
}

describe("gauges of shared state", () => {
  it("of the invokers' and the notifiers' shared consumers come from one copy each", async () => {
    // (longhaul_webhook_deliveries_pending has no labels: prom-client always
    // shows such a gauge, so the other copies show 0 and the sum still holds.)
    for (const [service, name] of [
      ["invoker", "longhaul_jetstream_consumer_pending"],
      ["notifier", "longhaul_jetstream_consumer_pending"],
    ] as const) {
      const urls = mesh.metricsUrls[service];
      expect(urls).toHaveLength(2);
      await eventually(async () => {
        const counts = await Promise.all(urls.map((u) => samples(u, name)));
        return counts.filter((c) => c > 0).length === 1;
      }, 30_000, `one ${service} to export ${name}`);
    }
  });

  it("are exported by one scheduler of two, and by the other once the first dies", async () => {
    expect((await api.putApp("one", { url: app.url, max_concurrency: 1 })).status).toBe(201);
    const first = await api.call("POST", "/dev/one/held?async=true", "");
    expect(first.status).toBe(202);
    await eventually(async () => (await api.getRun(first.json.run_id as string)).json?.status === "running", 20_000, "the first run to be held");
    for (let i = 0; i < 3; i++) expect((await api.call("POST", `/dev/one/q${i}?async=true`, "")).status).toBe(202);

    const urls = mesh.metricsUrls.scheduler;
    expect(urls).toHaveLength(2);
    const per = await eventually(async () => {
      const values = await Promise.all(urls.map((u) => queued(u, "one")));
      return values.filter((v) => v !== undefined).length === 1 && values.includes(3) ? values : undefined;
    }, 30_000, "one copy to export a queue of 3");
    // The sum over copies is the queue: 3, not 6.
    expect(per.reduce((a: number, v) => a + (v ?? 0), 0)).toBe(3);
    const leader = per.findIndex((v) => v !== undefined);

    // The exporting copy dies without handing the lease back: it expires, and the other copy takes it.
    await mesh.kill("scheduler", leader, "SIGKILL");
    const other = urls[1 - leader]!;
    await eventually(async () => (await queued(other, "one")) === 3, 40_000, "the other copy to export the queue");
  });
});
