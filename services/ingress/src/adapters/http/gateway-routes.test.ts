import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import { echoScript, type FakeMesh } from "../../../test/fake-mesh.js";
import { DEV, MAX_BODY, closedPort, errorOf, meshPorts, startGateway, startHarness } from "../../../test/gateway-harness.js";

// `/{project}/{app}/...` over real HTTP and real gRPC: auth, routing, async
// submits and sync pass-through against in-process fakes of the mesh.

let mesh: FakeMesh;
let base: string;
let stop: () => Promise<void>;

beforeAll(async () => {
  ({ mesh, base, stop } = await startHarness());
});

afterAll(async () => {
  await stop?.();
});

describe("auth and routing", () => {
  it("answers 401 JSON without a key or with a wrong one", async () => {
    for (const headers of [{} as Record<string, string>, { authorization: "Bearer nope" }, { authorization: "Basic eDp5" }]) {
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

  it("stores nothing for an upload cut off mid-body, and goes on serving", async () => {
    const before = mesh.submitted.length;
    const url = new URL(`${base}/dev/echo/x?async=true`);
    await new Promise<void>((resolve) => {
      const req = httpRequest(url, { method: "POST", headers: { ...DEV, "content-length": "1000" } });
      req.on("error", () => resolve()); // the client's own socket, destroyed below
      req.write(Buffer.alloc(100), () => setTimeout(() => req.destroy(), 50));
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(mesh.submitted.length).toBe(before);
    const next = await fetch(`${base}/dev/echo/x?async=true`, { method: "POST", headers: DEV, body: "hi" });
    expect(next.status).toBe(202);
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

describe("async submit on the scheduler's stream", () => {
  it("answers exactly as by the unary call: a run, and a refusal's status, body, Retry-After and RateLimit fields", async () => {
    mesh.submitErrors.set(
      "full",
      new LonghaulError("resource_exhausted", "project dev has 2 runs queued, its limit (max_queued 2)", {
        retryAfterSeconds: 5,
        quota: { limit: "max_queued", quota: 2, remaining: 0, resetSeconds: 5 },
      }),
    );
    // A gateway of its own: its first submit opens its stream and goes by the unary call.
    const clients = meshPorts(mesh.schedulerAddr, mesh.invokerAddr, mesh.notifierAddr);
    const { gateway, base: b } = await startGateway(clients.ports);
    const answer = async () => {
      const res = await fetch(`${b}/dev/full/x?async=true`, { method: "POST", headers: DEV, body: "x" });
      const headers = Object.fromEntries(["content-type", "retry-after", "ratelimit-policy", "ratelimit"].map((h) => [h, res.headers.get(h)]));
      return { status: res.status, headers, body: await res.text() };
    };
    try {
      const before = mesh.streamSubmits;
      const byCall = await answer();
      expect(mesh.streamSubmits).toBe(before);
      expect(byCall.status).toBe(429);
      let byStream = await answer();
      for (let i = 0; i < 100 && mesh.streamSubmits === before; i++) {
        await new Promise((r) => setTimeout(r, 20));
        byStream = await answer();
      }
      expect(mesh.streamSubmits).toBeGreaterThan(before);
      expect(byStream).toEqual(byCall);
      const ok = await fetch(`${b}/dev/echo/x?async=true`, { method: "POST", headers: DEV, body: "hi" });
      expect(ok.status).toBe(202);
      expect(await ok.text()).toMatch(/^\{"run_id":"[0-9a-f-]{36}"\}$/);
      expect(mesh.streamSubmits).toBeGreaterThan(before + 1);
    } finally {
      await gateway.close(100);
      clients.close();
      mesh.submitErrors.delete("full");
    }
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

