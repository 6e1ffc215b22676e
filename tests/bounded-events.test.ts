// The EVENTS stream is bounded by size (and age): filled past its limit while
// the notifier is down, it drops its oldest run.finished events, and still no
// webhook is lost: Postgres says which runs' webhooks no notifier took, and
// the scheduler publishes those again.
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

const MAX_BYTES = 1024 * 1024;
const RUNS = 30;
/** Just under the 64 KiB a run.finished carries inline: each event is about 80 KiB. */
const ANSWER = "x".repeat(60 * 1024);

let mesh: TestMesh;
let app: Peer;
let hook: Peer;

beforeAll(async () => {
  app = await startPeer();
  app.handle((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(ANSWER);
  });
  hook = await startPeer();
  mesh = await startTestMesh({
    env: {
      LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true",
      LONGHAUL_EVENTS_MAX_BYTES: String(MAX_BYTES),
      LONGHAUL_EVENTS_MAX_MSG_BYTES: String(128 * 1024),
      SCHEDULER_WEBHOOK_REPUBLISH_SECONDS: "2",
    },
  });
});

afterAll(async () => {
  await mesh?.cleanup();
  await app?.close();
  await hook?.close();
});

describe("a bounded EVENTS stream", () => {
  it("drops its oldest events past its size limit and loses no webhook", async () => {
    const nc = await connect({ servers: mesh.env.NATS_URL });
    try {
      const jsm = await jetstreamManager(nc);
      const stream = `${mesh.natsPrefix.toUpperCase()}_EVENTS`;
      const before = await jsm.streams.info(stream);
      expect(before.config).toMatchObject({ max_bytes: MAX_BYTES, max_msg_size: 128 * 1024, max_age: 86_400 * 1e9 });

      await mesh.kill("notifier", 0);
      const api = gateway(mesh.ingressUrl!, mesh.apiKey);
      expect([200, 201]).toContain((await api.putApp("big", { url: app.url })).status);
      const ids: string[] = [];
      for (let i = 0; i < RUNS; i++) {
        const r = await api.call("POST", `/dev/big/${i}?async=true&webhookEndpoint=${encodeURIComponent(`${hook.url}/hook`)}`, "{}");
        expect(r.status, r.text).toBe(202);
        ids.push(r.json.run_id as string);
      }
      for (const id of ids) expect((await api.finished(id)).status).toBe("succeeded");

      // More run.finished than the stream can hold: the oldest went.
      const full = await jsm.streams.info(stream);
      expect(full.state.bytes).toBeLessThanOrEqual(MAX_BYTES);
      expect(full.state.first_seq).toBeGreaterThan(1);
      expect(full.state.messages).toBeLessThan(RUNS);

      await mesh.start("notifier", 0);
      await eventually(
        async () => {
          const got = new Set(hook.received.map((r) => r.headers["x-longhaul-run-id"]));
          return ids.every((id) => got.has(id));
        },
        60_000,
        "a webhook for every run",
      );
      for (const id of ids) {
        await eventually(async () => (await api.getRun(id)).json?.webhook_state === "delivered", 20_000, `${id} delivered`);
      }
      // The webhook is the app's answer, whichever event carried it.
      const first = hook.received.find((r) => r.headers["x-longhaul-run-id"] === ids[0]);
      expect(first!.body.toString()).toBe(ANSWER);
    } finally {
      await nc.close();
    }
  });
});
