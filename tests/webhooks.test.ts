// Webhooks end to end: webhooks through the real mesh, verified with the
// `standardwebhooks` package (not our own code), retried, logged, replayable,
// rotated; private targets refused where the operator did not allow them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer, type Received } from "./helpers/peers.js";

let open: TestMesh; // private webhook targets allowed (as under npm start)
let strict: TestMesh; // the default: private targets refused
let app: Peer;
let hook: Peer;
let api: ReturnType<typeof gateway>;

function headersOf(r: Received): Record<string, string> {
  return Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, String(v)]));
}

beforeAll(async () => {
  app = await startPeer();
  hook = await startPeer();
  app.handle((req, res) => {
    const status = Number(new URL(req.url, "http://x").searchParams.get("status") ?? 200);
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify({ answer: req.url }));
  });
  [open, strict] = await Promise.all([
    startTestMesh({ env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true", NOTIFIER_RETRY_SCHEDULE: "0,1,1,1", NOTIFIER_POLL_MS: "200" } }),
    startTestMesh({ services: { invoker: 1, notifier: 1 } }),
  ]);
  api = gateway(open.ingressUrl, open.apiKey);
  expect((await api.putApp("echo", { url: app.url })).status).toBe(201);
});

afterAll(async () => {
  await Promise.all([open?.cleanup(), strict?.cleanup()]);
  await app?.close();
  await hook?.close();
});

async function submit(path: string, hookPath: string): Promise<string> {
  const r = await api.call("POST", `/dev/echo${path}${path.includes("?") ? "&" : "?"}async=true&webhookEndpoint=${encodeURIComponent(hook.url + hookPath)}`, "{}");
  expect(r.status, r.text).toBe(202);
  return r.json.run_id;
}

describe("webhooks", () => {
  it("are signed by the Standard Webhooks scheme with the project's secret", async () => {
    hook.handle((_req, res) => res.end("ok"));
    const id = await submit("/signed", "/signed");
    const [delivery] = await hook.waitFor(1, "/signed");
    const { json: secret } = await api.call("GET", "/v1/webhooks/secret");
    expect(secret.secret).toMatch(/^whsec_/);
    const payload = new Webhook(secret.secret).verify(delivery!.body.toString(), headersOf(delivery!));
    expect(payload).toEqual({ answer: "/signed" });
    expect(delivery!.headers["webhook-id"]).toBeTruthy();
    expect(delivery!.headers["x-longhaul-run-id"]).toBe(id);
    // Tampering breaks it.
    expect(() => new Webhook(secret.secret).verify(`${delivery!.body.toString()} `, headersOf(delivery!))).toThrow();
  });

  it("retries a 500 and records every attempt; the run shows its webhook state", async () => {
    let n = 0;
    hook.handle((_req, res) => {
      n++;
      res.writeHead(n < 3 ? 500 : 200);
      res.end(n < 3 ? "down" : "up");
    });
    const id = await submit("/retried", "/retried");
    await hook.waitFor(3, "/retried", 30_000);
    await eventually(async () => (await api.getRun(id)).json?.webhook_state === "delivered", 15_000, "delivered");
    const d = await api.call("GET", `/v1/runs/${id}/deliveries`);
    expect(d.status).toBe(200);
    expect(d.json).toMatchObject({ run_id: id, state: "delivered", attempts_made: 3 });
    expect(d.json.attempts.map((a: { status_code: number }) => a.status_code)).toEqual([500, 500, 200]);
    expect(d.json.attempts[0].response_excerpt).toBe("down");
    const ids = new Set(hook.received.filter((r) => r.url === "/retried").map((r) => r.headers["webhook-id"]));
    expect(ids.size).toBe(1); // one webhook-id across retries: receivers can dedupe
  });

  it("delivers failed runs too, and redelivers on request with the same webhook-id", async () => {
    hook.handle((_req, res) => res.end("ok"));
    const id = await submit("/boom?status=404", "/failed");
    const [first] = await hook.waitFor(1, "/failed");
    expect(first!.headers["x-longhaul-run-status"]).toBe("failed");
    expect(first!.headers["x-longhaul-status-code"]).toBe("404");
    // Until the notifier has recorded the first attempt (its lease ends with
    // that write, batched with others for a few ms) a redelivery is refused
    // with 409 and Retry-After, as a client would be: ask again.
    let again = await api.call("POST", `/v1/runs/${id}/webhook/redeliver`);
    await eventually(async () => {
      if (again.status === 409) again = await api.call("POST", `/v1/runs/${id}/webhook/redeliver`);
      return again.status !== 409;
    }, 10_000, "redelivery accepted once the first attempt is recorded");
    expect(again.status).toBe(202);
    const both = await hook.waitFor(2, "/failed");
    expect(both[1]!.headers["webhook-id"]).toBe(first!.headers["webhook-id"]);
    // The notifier records an attempt once the receiver's answer is read, just after the receiver saw it.
    await eventually(async () => (await api.call("GET", `/v1/runs/${id}/deliveries`)).json.attempts.length >= 2, 10_000, "second attempt recorded");
  });

  it("signs with both secrets during a rotation", async () => {
    hook.handle((_req, res) => res.end("ok"));
    const before = (await api.call("GET", "/v1/webhooks/secret")).json.secret as string;
    const rotated = await api.call("POST", "/v1/webhooks/secret/rotate");
    expect(rotated.status).toBe(200);
    expect(rotated.json.secret).not.toBe(before);
    expect(rotated.json.previous_secret).toBe(before);
    await submit("/rotated", "/rotated");
    const [d] = await hook.waitFor(1, "/rotated");
    expect(String(d!.headers["webhook-signature"]).split(" ")).toHaveLength(2);
    for (const secret of [before, rotated.json.secret]) {
      expect(new Webhook(secret).verify(d!.body.toString(), headersOf(d!))).toEqual({ answer: "/rotated" });
    }
  });

  it("is 404 for the deliveries of a run without a webhook", async () => {
    const r = await api.call("POST", "/dev/echo/nohook?async=true", "{}");
    await api.finished(r.json.run_id);
    expect((await api.call("GET", `/v1/runs/${r.json.run_id}/deliveries`)).status).toBe(404);
  });
});

describe("webhook safety where private targets are not allowed (the default)", () => {
  it.each([
    "http://127.0.0.1:9/hook",
    "http://localhost/hook",
    "http://2130706433/hook",
    "http://0x7f.1/hook",
    "http://10.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://100.64.0.1/hook",
    "http://user:pw@example.com/hook",
  ])("rejects %s at submit with 400 and stores nothing", async (url) => {
    const s = gateway(strict.ingressUrl, strict.apiKey);
    await s.putApp("echo", { url: app.url });
    const before = (await s.call("GET", "/v1/runs?limit=500")).json.runs.length;
    const r = await s.call("POST", `/dev/echo/x?async=true&webhookEndpoint=${encodeURIComponent(url)}`, "{}");
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe("invalid_argument");
    expect((await s.call("GET", "/v1/runs?limit=500")).json.runs.length).toBe(before);
  });
});
