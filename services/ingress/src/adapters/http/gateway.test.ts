import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LonghaulError, appsPb, createLogger, createRegistry, resultUrlKey, runsPb, signResultUrl } from "@longhaul/shared";
import { KEYS, TOKEN, echoScript, startFakeMesh, type FakeMesh } from "../../../test/fake-mesh.js";
import { createAuthenticator } from "../../core/auth.js";
import type { MeshPorts } from "../../core/ports.js";
import { createInvokerClient } from "../grpc/invoker-client.js";
import { createNotifierClient } from "../grpc/notifier-client.js";
import { createSchedulerClients } from "../grpc/scheduler-client.js";
import { createHttpGateway, type HttpGateway } from "./server.js";

const MAX_BODY = 1024;
const DEV = { authorization: "Bearer key-dev" };

/** A gateway on an ephemeral port over the given ports. */
async function startGateway(ports: MeshPorts) {
  const gateway = createHttpGateway({
    log: createLogger("ingress-test", "silent"),
    registry: createRegistry("ingress-test"),
    ports,
    authenticator: createAuthenticator(ports.keys, { cacheSeconds: 5 }),
    limits: { maxBodyBytes: MAX_BODY, sseHeartbeatSeconds: 1, sseMaxSeconds: 30 },
    resultUrlKey: resultUrlKey(TOKEN),
  });
  const port = await gateway.listen("127.0.0.1", 0);
  return { gateway, base: `http://127.0.0.1:${port}` };
}

function meshPorts(schedulerAddr: string, invokerAddr: string, notifierAddr: string) {
  const scheduler = createSchedulerClients(schedulerAddr, TOKEN);
  const notifier = createNotifierClient(notifierAddr, TOKEN);
  const invoker = createInvokerClient(invokerAddr, TOKEN);
  return {
    ports: { ...scheduler, webhooks: notifier, invoker } as MeshPorts,
    close: () => [scheduler, notifier, invoker].forEach((c) => c.close()),
  };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

let mesh: FakeMesh;
let clients: ReturnType<typeof meshPorts>;
let gw: HttpGateway;
let base: string;

beforeAll(async () => {
  mesh = await startFakeMesh();
  clients = meshPorts(mesh.schedulerAddr, mesh.invokerAddr, mesh.notifierAddr);
  ({ gateway: gw, base } = await startGateway(clients.ports));
  mesh.apps.set("dev/echo", appsPb.App.fromPartial({ name: "echo", url: "http://app.internal:9000/base", timeoutSeconds: 60 }));
});

afterAll(async () => {
  await gw?.close(100);
  clients?.close();
  await mesh?.stop();
});

async function errorOf(res: Response) {
  expect(res.headers.get("content-type")).toMatch(/application\/json/);
  return ((await res.json()) as { error: { code: string; message: string } }).error;
}

describe("auth and routing", () => {
  it("answers 401 JSON without a key or with a wrong one", async () => {
    for (const headers of [{}, { authorization: "Bearer nope" }, { authorization: "Basic eDp5" }]) {
      const res = await fetch(`${base}/dev/echo/x?async=true`, { method: "POST", headers, body: "hi" });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect((await errorOf(res)).code).toBe("unauthenticated");
    }
    expect(mesh.submitted).toHaveLength(0);
  });

  it("answers 404, never 403, for another project's path or run", async () => {
    const res = await fetch(`${base}/other/echo/x?async=true`, { method: "POST", headers: DEV, body: "hi" });
    expect(res.status).toBe(404);
    expect((await errorOf(res)).code).toBe("not_found");
    const theirs = mesh.addRun("other", "echo");
    for (const path of [`/v1/runs/${theirs.id}`, `/v1/runs/${theirs.id}/deliveries`]) {
      expect((await fetch(`${base}${path}`, { headers: DEV })).status).toBe(404);
    }
    const redeliver = await fetch(`${base}/v1/runs/${theirs.id}/webhook/redeliver`, { method: "POST", headers: DEV });
    expect(redeliver.status).toBe(404);
  });

  it("answers 404 JSON for an unknown route and a run id that is not a UUID", async () => {
    for (const path of ["/v1/nothing", "/justone", "/v1/runs/not-a-uuid"]) {
      const res = await fetch(`${base}${path}`, { headers: DEV });
      expect(res.status).toBe(404);
      expect((await errorOf(res)).code).toBe("not_found");
    }
  });
});

describe("async submit", () => {
  it("answers 202 with exactly {\"run_id\"} and Location, after SubmitRun", async () => {
    const res = await fetch(`${base}/dev/echo/x?async=true`, { method: "POST", headers: DEV, body: "hi" });
    expect(res.status).toBe(202);
    const text = await res.text();
    expect(text).toMatch(/^\{"run_id":"[0-9a-f-]{36}"\}$/);
    const { run_id } = JSON.parse(text) as { run_id: string };
    expect(res.headers.get("location")).toBe(`/v1/runs/${run_id}`);
    expect(mesh.runs.get(run_id)?.project).toBe("dev");
  });

  it("submits the request as sent: method, path, query, headers, raw body", async () => {
    const body = Buffer.from([0, 1, 2, 3, 0xff, 0xfe, 10, 13]);
    const before = mesh.submitted.length;
    const res = await fetch(
      `${base}/dev/echo/deep/p%20ath/?b=2&async=true&a=%2F+x&webhookEndpoint=https%3A%2F%2Fhooks.example%2Fw&a=1`,
      {
        method: "PATCH",
        headers: {
          ...DEV,
          "content-type": "application/x-custom",
          "x-app-header": "kept",
          "idempotency-key": "submit-shape-1",
          "x-longhaul-timeout": "30",
          "x-longhaul-priority": "5",
          "x-longhaul-delay": "60",
          connection: "keep-alive",
        },
        body,
      },
    );
    expect(res.status).toBe(202);
    const req = mesh.submitted[before]!;
    expect(req.app).toBe("echo");
    expect(req.request?.method).toBe("PATCH");
    expect(req.request?.path).toBe("/deep/p%20ath/");
    expect(req.request?.query).toBe("b=2&a=%2F+x&a=1");
    expect(Buffer.from(req.request!.body)).toEqual(body);
    const names = req.request!.headers.map((h) => h.name.toLowerCase());
    expect(names).toContain("content-type");
    expect(names).toContain("x-app-header");
    for (const dropped of ["authorization", "idempotency-key", "host", "connection", "content-length", "x-longhaul-timeout"]) {
      expect(names).not.toContain(dropped);
    }
    expect(req.webhookUrl).toBe("https://hooks.example/w");
    expect(req.timeoutSeconds).toBe(30);
    expect(req.priority).toBe(5);
    expect(req.idempotencyKey).toBe("submit-shape-1");
    expect(req.notBefore!.getTime()).toBeGreaterThan(Date.now() + 50_000);
  });

  it("takes Prefer: respond-async and gives the same run for a repeated Idempotency-Key", async () => {
    const send = () =>
      fetch(`${base}/dev/echo/`, {
        method: "POST",
        headers: { ...DEV, prefer: "respond-async", "idempotency-key": "same-1" },
        body: "x",
      });
    const a = await send();
    const b = await send();
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(a.headers.get("preference-applied")).toBe("respond-async");
    expect(await a.json()).toEqual(await b.json());
  });

  it("answers 413 for a body over the limit, declared or streamed, and stores nothing", async () => {
    const before = mesh.submitted.length;
    const big = await fetch(`${base}/dev/echo/x?async=true`, { method: "POST", headers: DEV, body: Buffer.alloc(MAX_BODY + 1) });
    expect(big.status).toBe(413);
    expect((await errorOf(big)).code).toBe("payload_too_large");

    // Chunked, no Content-Length: counted while read.
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(`${base}/dev/echo/x?async=true`);
      const req = httpRequest(url, { method: "POST", headers: { ...DEV, "transfer-encoding": "chunked" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      for (let i = 0; i < 4; i++) req.write(Buffer.alloc(400));
      req.end();
    });
    expect(status).toBe(413);
    expect(mesh.submitted.length).toBe(before);
  });

  it("answers 400 for a bad option, and 429 with Retry-After when the scheduler says so", async () => {
    const bad = await fetch(`${base}/dev/echo/x?async=true`, { method: "POST", headers: { ...DEV, "x-longhaul-priority": "high" } });
    expect(bad.status).toBe(400);
    expect((await errorOf(bad)).message).toMatch(/X-Longhaul-Priority/);

    mesh.submitErrors.set("busy", new LonghaulError("resource_exhausted", "app busy is over its limits", { retryAfterSeconds: 7 }));
    const busy = await fetch(`${base}/dev/busy/x?async=true`, { method: "POST", headers: DEV });
    expect(busy.status).toBe(429);
    expect(busy.headers.get("retry-after")).toBe("7");
    expect((await errorOf(busy)).code).toBe("resource_exhausted");
  });
});

describe("scheduler down", () => {
  it("answers 503, never 202, when the scheduler does not answer", async () => {
    const dead = `127.0.0.1:${await closedPort()}`;
    // Keys still resolve (cached in real life); SubmitRun itself cannot be reached.
    const live = meshPorts(mesh.schedulerAddr, mesh.invokerAddr, mesh.notifierAddr);
    const down = meshPorts(dead, mesh.invokerAddr, mesh.notifierAddr);
    const { gateway, base: b } = await startGateway({ ...down.ports, keys: live.ports.keys });
    const { gateway: gateway2, base: b2 } = await startGateway(down.ports);
    try {
      const res = await fetch(`${b}/dev/echo/x?async=true`, { method: "POST", headers: DEV, body: "x" });
      expect(res.status).toBe(503);
      // The transport's detail (addresses) stays in the log, not in the answer.
      expect(await errorOf(res)).toEqual({ code: "unavailable", message: "a Longhaul service is unavailable; try again" });
      const auth = await fetch(`${b2}/v1/runs`, { headers: DEV });
      expect(auth.status).toBe(503);
      expect((await fetch(`${b2}/healthz`)).status).toBe(503);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    } finally {
      await gateway.close(100);
      await gateway2.close(100);
      live.close();
      down.close();
    }
  });
});

describe("sync pass-through", () => {
  it("sends head and body to the invoker and the app's answer back", async () => {
    mesh.invokeScript = echoScript;
    const res = await fetch(`${base}/dev/echo/sync/path?q=1&async=false`, {
      method: "POST",
      headers: { ...DEV, "content-type": "text/plain", "x-longhaul-timeout": "10", "idempotency-key": "app-own" },
      body: "hello app",
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-app")).toBe("echo");
    expect(await res.text()).toBe("hello app");
    const got = mesh.invokes.at(-1)!;
    expect(got.head).toMatchObject({
      url: "http://app.internal:9000/base/sync/path?q=1",
      method: "POST",
      timeoutSeconds: 10,
      project: "dev",
      app: "echo",
    });
    const names = got.head.headers.map((h) => h.name.toLowerCase());
    expect(names).toContain("idempotency-key");
    expect(names).not.toContain("authorization");
  });

  it("streams a chunked answer: the first chunk arrives before the app ends", async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    mesh.invokeScript = async (_received, send) => {
      send({ part: { $case: "head", value: { statusCode: 201, headers: [{ name: "content-type", value: "text/plain" }] } } });
      send({ part: { $case: "bodyChunk", value: Buffer.from("first;") } });
      await released; // the app "works" until the test has seen the first chunk
      send({ part: { $case: "bodyChunk", value: Buffer.from("second") } });
    };
    const res = await fetch(`${base}/dev/echo/stream`, { headers: DEV });
    expect(res.status).toBe(201);
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(Buffer.from(first.value!).toString()).toBe("first;");
    release();
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += Buffer.from(r.value).toString();
    expect(rest).toBe("second");
    mesh.invokeScript = echoScript;
  });

  it("cancels the gRPC call when the client goes away", async () => {
    mesh.invokeScript = async (received, send) => {
      send({ part: { $case: "head", value: { statusCode: 200, headers: [] } } });
      send({ part: { $case: "bodyChunk", value: Buffer.from("tick") } });
      for (let i = 0; i < 100 && !received.cancelled; i++) await new Promise((r) => setTimeout(r, 50));
    };
    const controller = new AbortController();
    const res = await fetch(`${base}/dev/echo/hold`, { headers: DEV, signal: controller.signal });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    const call = mesh.invokes.at(-1)!;
    for (let i = 0; i < 100 && !call.cancelled; i++) await new Promise((r) => setTimeout(r, 20));
    expect(call.cancelled).toBe(true);
    mesh.invokeScript = echoScript;
  });

  it("answers 404 for an unknown app", async () => {
    const res = await fetch(`${base}/dev/ghost/x`, { headers: DEV });
    expect(res.status).toBe(404);
  });
});

describe("runs API", () => {
  it("shows a run, long-polls within bounds, lists, cancels and retries", async () => {
    const run = mesh.addRun("dev", "echo");
    const got = await fetch(`${base}/v1/runs/${run.id}?wait=1`, { headers: DEV });
    expect(got.status).toBe(200);
    expect(await got.json()).toMatchObject({ run_id: run.id, status: "queued", app: "echo", webhook_state: "none" });
    expect((await fetch(`${base}/v1/runs/${run.id}?wait=61`, { headers: DEV })).status).toBe(400);

    const list = (await (await fetch(`${base}/v1/runs?app=echo&limit=500`, { headers: DEV })).json()) as {
      runs: { run_id: string }[];
    };
    expect(list.runs.map((r) => r.run_id)).toContain(run.id);
    expect((await fetch(`${base}/v1/runs?status=nope`, { headers: DEV })).status).toBe(400);

    const cancelled = await fetch(`${base}/v1/runs/${run.id}/cancel`, { method: "POST", headers: DEV });
    expect(await cancelled.json()).toMatchObject({ status: "cancelled" });
    const retried = await fetch(`${base}/v1/runs/${run.id}/retry`, { method: "POST", headers: DEV });
    expect(retried.status).toBe(202);
    const { run_id } = (await retried.json()) as { run_id: string };
    expect(retried.headers.get("location")).toBe(`/v1/runs/${run_id}`);
    expect(mesh.runs.get(run_id)?.retryOf).toBe(run.id);
  });

  it("gives the result raw by default, as JSON on request, and by signed link", async () => {
    const run = mesh.addRun("dev", "echo", runsPb.RunStatus.RUN_STATUS_SUCCEEDED);
    mesh.results.set(run.id, {
      runId: run.id,
      status: runsPb.RunStatus.RUN_STATUS_SUCCEEDED,
      statusCode: 201,
      headers: [{ name: "content-type", value: "image/png" }],
      body: Buffer.from([137, 80, 78, 71]),
      contentType: "image/png",
      bodyTruncated: false,
    });
    const raw = await fetch(`${base}/v1/runs/${run.id}/result`, { headers: DEV });
    expect(raw.status).toBe(200);
    expect(raw.headers.get("content-type")).toBe("image/png");
    expect(raw.headers.get("x-longhaul-status-code")).toBe("201");
    expect(Buffer.from(await raw.arrayBuffer())).toEqual(Buffer.from([137, 80, 78, 71]));

    const json = await fetch(`${base}/v1/runs/${run.id}/result?format=json`, { headers: DEV });
    expect(await json.json()).toMatchObject({ status: "succeeded", status_code: 201, body_base64: "iVBORw==" });

    const signed = new URL(signResultUrl(base, run.id, resultUrlKey(TOKEN), new Date(Date.now() + 60_000)));
    const viaLink = await fetch(signed);
    expect(viaLink.status).toBe(200);
    expect(Buffer.from(await viaLink.arrayBuffer())).toEqual(Buffer.from([137, 80, 78, 71]));
    signed.searchParams.set("signature", "forged");
    expect((await fetch(signed)).status).toBe(401);
    expect((await fetch(`${base}/v1/runs/${run.id}/result`)).status).toBe(401);

    const unfinished = mesh.addRun("dev", "echo", runsPb.RunStatus.RUN_STATUS_RUNNING);
    mesh.results.set(unfinished.id, { ...mesh.results.get(run.id)!, runId: unfinished.id, status: unfinished.status });
    const early = await fetch(`${base}/v1/runs/${unfinished.id}/result`, { headers: DEV });
    expect(early.status).toBe(409);
    expect((await errorOf(early)).message).toMatch(/running/);
  });

  it("streams state changes as SSE frames, with heartbeats, and ends when finished", async () => {
    const run = mesh.addRun("dev", "echo");
    const res = await fetch(`${base}/v1/runs/${run.id}/events`, { headers: DEV });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    const readUntil = async (needle: string) => {
      while (!text.includes(needle)) {
        const r = await reader.read();
        if (r.done) throw new Error(`stream ended before ${needle}: ${text}`);
        text += Buffer.from(r.value).toString();
      }
    };
    await readUntil('"status":"queued"');
    await readUntil(": heartbeat");
    mesh.watch.emit(`run:${run.id}`, { ...run, status: runsPb.RunStatus.RUN_STATUS_RUNNING });
    mesh.watch.emit(`run:${run.id}`, { ...run, status: runsPb.RunStatus.RUN_STATUS_SUCCEEDED, statusCode: 200 });
    mesh.watch.emit(`end:${run.id}`);
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += Buffer.from(r.value).toString();
    const frames = text.split("\n\n").filter((f) => f.startsWith("event: run"));
    expect(frames.map((f) => (JSON.parse(f.split("\ndata: ")[1]!) as { status: string }).status)).toEqual([
      "queued",
      "running",
      "succeeded",
    ]);

    const missing = await fetch(`${base}/v1/runs/${crypto.randomUUID()}/events`, { headers: DEV });
    expect(missing.status).toBe(404);
  });
});

describe("apps API", () => {
  it("creates (201), updates (200), reads, lists and deletes (204)", async () => {
    const body = { url: "http://127.0.0.1:9999", timeout_seconds: 30, retry: { max_attempts: 2 } };
    const put = (b: unknown) =>
      fetch(`${base}/v1/apps/thumbs`, { method: "PUT", headers: { ...DEV, "content-type": "application/json" }, body: JSON.stringify(b) });
    const created = await put(body);
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ name: "thumbs", url: "http://127.0.0.1:9999", retry: { max_attempts: 2 } });
    expect((await put({ ...body, timeout_seconds: 60 })).status).toBe(200);
    expect(await (await fetch(`${base}/v1/apps/thumbs`, { headers: DEV })).json()).toMatchObject({ timeout_seconds: 60 });
    const list = (await (await fetch(`${base}/v1/apps`, { headers: DEV })).json()) as { apps: { name: string }[] };
    expect(list.apps.map((a) => a.name)).toContain("thumbs");
    expect((await fetch(`${base}/v1/apps/thumbs`, { method: "DELETE", headers: DEV })).status).toBe(204);
    expect((await fetch(`${base}/v1/apps/thumbs`, { headers: DEV })).status).toBe(404);
  });

  it("answers 400 for malformed JSON and a bad app", async () => {
    const malformed = await fetch(`${base}/v1/apps/x`, { method: "PUT", headers: DEV, body: "{not json" });
    expect(malformed.status).toBe(400);
    expect((await errorOf(malformed)).message).toMatch(/malformed JSON/);
    const bad = await fetch(`${base}/v1/apps/x`, { method: "PUT", headers: DEV, body: JSON.stringify({ url: 5 }) });
    expect(bad.status).toBe(400);
  });
});

describe("webhooks API", () => {
  it("serves deliveries, redelivery and the project's secret", async () => {
    const run = mesh.addRun("dev", "echo");
    const deliveries = await fetch(`${base}/v1/runs/${run.id}/deliveries`, { headers: DEV });
    expect(await deliveries.json()).toMatchObject({ run_id: run.id, state: "delivered" });
    const redeliver = await fetch(`${base}/v1/runs/${run.id}/webhook/redeliver`, { method: "POST", headers: DEV });
    expect(redeliver.status).toBe(202);
    expect(await (await fetch(`${base}/v1/webhooks/secret`, { headers: DEV })).json()).toEqual({
      secret: "whsec_dev",
      previous_secret: null,
      previous_expires_at: null,
    });
    const rotated = await fetch(`${base}/v1/webhooks/secret/rotate`, { method: "POST", headers: DEV });
    expect(await rotated.json()).toMatchObject({ secret: "whsec_dev_2", previous_secret: "whsec_dev" });
  });
});

describe("metrics", () => {
  it("counts requests by route pattern and accepted runs", async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/longhaul_http_requests_total\{[^}]*route="\/:project\/:app\/\*"[^}]*status="202"/);
    expect(text).toMatch(/longhaul_runs_accepted_total\{[^}]*existing="false"[^}]*\} \d+/);
    expect(text).toContain("longhaul_http_request_duration_seconds_bucket");
    expect(Object.keys(KEYS)).toContain("key-dev");
  });
});
