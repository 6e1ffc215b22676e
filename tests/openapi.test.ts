// The OpenAPI document of the HTTP API: served without a key at
// /v1/openapi.json, valid OpenAPI 3.1, rendered at /docs with no network
// beyond the gateway, and true to what the mesh answers: every answer below
// (as every answer of every end-to-end test) is checked against the
// document by the fetch wrapper startTestMesh installs.
import { existsSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { createResponseChecker } from "./helpers/openapi-conformance.js";
import { gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let hooks: Peer;
let api: ReturnType<typeof gateway>;
let doc: Record<string, any>;

beforeAll(async () => {
  [mesh, app, hooks] = await Promise.all([
    startTestMesh({ env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true", SCHEDULER_TICK_MS: "200" } }),
    startPeer(),
    startPeer(),
  ]);
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  app.handle(async (req, res) => {
    const u = new URL(req.url, "http://x");
    if (u.pathname === "/hold") return; // never answers: cancelled by the test
    res.writeHead(Number(u.searchParams.get("status") ?? 200), { "content-type": "application/json", "x-app": "yes" });
    res.end(JSON.stringify({ echo: u.pathname }));
  });
  const res = await fetch(`${mesh.ingressUrl}/v1/openapi.json`);
  doc = (await res.json()) as Record<string, any>;
  const put = await api.putApp("echo", { url: app.url, retry: { max_attempts: 1 } });
  expect(put.status).toBe(201);
});

afterAll(async () => {
  await mesh?.cleanup();
  await app?.close();
  await hooks?.close();
});

describe("the document", () => {
  it("is served without a key, revalidated by ETag, and is valid OpenAPI 3.1", async () => {
    const res = await fetch(`${mesh.ingressUrl}/v1/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const etag = res.headers.get("etag")!;
    const again = await fetch(`${mesh.ingressUrl}/v1/openapi.json`, { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    const body = await res.json();
    expect(body.openapi).toMatch(/^3\.1\./);
    const result = await new Validator().validate(body);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("names every route of the control API", () => {
    for (const path of [
      "/{project}/{app}/{path}",
      "/v1/runs",
      "/v1/runs/{id}",
      "/v1/runs/{id}/result",
      "/v1/runs/{id}/cancel",
      "/v1/runs/{id}/retry",
      "/v1/runs/{id}/events",
      "/v1/runs/{id}/deliveries",
      "/v1/runs/{id}/webhook/redeliver",
      "/v1/apps",
      "/v1/apps/{app}",
      "/v1/events",
      "/v1/webhooks/secret",
    ]) {
      expect(Object.keys(doc.paths), path).toContain(path);
    }
  });

  it("the conformance check rejects an answer the document does not allow", async () => {
    const checker = createResponseChecker(doc);
    const json = (status: number, body: unknown) =>
      new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
    const u = (p: string) => new URL(`http://x${p}`);
    await expect(checker.check("POST", u("/dev/echo/x"), json(202, { run_id: "not-a-uuid" }))).rejects.toThrow(/run_id/);
    await expect(checker.check("GET", u("/v1/runs"), json(200, { runs: [], next_cursor: null, extra: 1 }))).rejects.toThrow(
      /additional/,
    );
    await expect(checker.check("GET", u("/v1/runs"), json(418, { error: { code: "x", message: "y" } }))).resolves.toBeUndefined();
    await expect(checker.check("GET", u("/v1/runs"), json(500, { oops: true }))).rejects.toThrow(/does not match/);
    await expect(checker.check("GET", u("/v1/nowhere"), json(200, {}))).rejects.toThrow(/no path/);
    await expect(
      checker.check("GET", u("/v1/runs"), new Response("x", { status: 200, headers: { "content-type": "text/plain" } })),
    ).rejects.toThrow(/not documented/);
    await expect(checker.check("PATCH", u("/v1/runs"), json(200, {}))).rejects.toThrow(/not an operation/);
  });
});

describe("real answers match the document", () => {
  it("a run's whole life: submit, get, wait, result in every format, request, list, events, retry", async () => {
    const accepted = await api.call("POST", "/dev/echo/x?async=true", { a: 1 }, { "x-longhaul-labels": "team=ml" });
    expect(accepted.status).toBe(202);
    const id = accepted.json.run_id as string;
    const done = await api.call("GET", `/v1/runs/${id}?wait=30`);
    expect(done.json.status).toBe("succeeded");
    expect((await api.call("GET", `/v1/runs/${id}/result`)).json).toEqual({ echo: "/x" });
    expect((await api.call("GET", `/v1/runs/${id}/result?format=json`)).json.status_code).toBe(200);
    expect((await api.call("GET", `/v1/runs/${id}/result?format=preview`)).json.body_encoding).toBe("utf8");
    expect((await api.call("GET", `/v1/runs/${id}/request`)).json.method).toBe("POST");
    expect((await api.call("GET", "/v1/runs?app=echo&label=team:ml")).json.runs).toHaveLength(1);
    const events = await fetch(`${mesh.ingressUrl}/v1/runs/${id}/events`, { headers: { authorization: `Bearer ${mesh.apiKey}` } });
    expect(events.status).toBe(200);
    expect(await events.text()).toContain('"status":"succeeded"');
    const retried = await api.call("POST", `/v1/runs/${id}/retry`);
    expect(retried.status).toBe(202);
    expect((await api.call("GET", `/v1/runs/${retried.json.run_id}?wait=30`)).json.retry_of).toBe(id);
  });

  it("a sync call passes the app's answer through", async () => {
    const res = await api.call("GET", "/dev/echo/sync?status=201");
    expect(res.status).toBe(201);
    expect(res.json).toEqual({ echo: "/sync" });
  });

  it("cancel, and the errors of the control API", async () => {
    const held = await api.call("POST", "/dev/echo/hold?async=true");
    const cancelled = await api.call("POST", `/v1/runs/${held.json.run_id}/cancel`);
    expect(cancelled.json.status).toBe("cancelled");
    expect((await api.call("POST", `/v1/runs/${held.json.run_id}/cancel`)).status).toBe(409);
    expect((await api.call("GET", "/v1/runs/00000000-0000-4000-8000-000000000000")).status).toBe(404);
    expect((await api.call("GET", "/v1/runs?stauts=failed")).status).toBe(400);
    expect((await api.call("GET", "/v1/nowhere")).status).toBe(404);
    const anonymous = await fetch(`${mesh.ingressUrl}/v1/runs`);
    expect(anonymous.status).toBe(401);
    await anonymous.body?.cancel();
  });

  it("webhooks: delivery, redelivery and the secret", async () => {
    hooks.handle((_req, res) => {
      res.writeHead(204);
      res.end();
    });
    const accepted = await api.call("POST", `/dev/echo/hooked?async=true&webhookEndpoint=${encodeURIComponent(`${hooks.url}/in`)}`);
    await hooks.waitFor(1, "/in");
    const id = accepted.json.run_id as string;
    let delivery = await api.call("GET", `/v1/runs/${id}/deliveries`);
    for (let i = 0; i < 50 && delivery.json.state !== "delivered"; i++) delivery = await api.call("GET", `/v1/runs/${id}/deliveries`);
    expect(delivery.json.state).toBe("delivered");
    expect((await api.call("POST", `/v1/runs/${id}/webhook/redeliver`)).status).toBe(202);
    expect((await api.call("GET", "/v1/webhooks/secret")).json.secret).toMatch(/^whsec_/);
    expect((await api.call("POST", "/v1/webhooks/secret/rotate")).json.previous_secret).toMatch(/^whsec_/);
  });

  it("apps, stats, the project and health", async () => {
    expect((await api.call("GET", "/v1/apps")).json.apps.map((a: { name: string }) => a.name)).toContain("echo");
    expect((await api.call("GET", "/v1/apps/echo")).json.url).toBe(app.url);
    expect((await api.call("GET", "/v1/apps/echo/outcomes")).json.app).toBe("echo");
    expect((await api.putApp("echo", { url: app.url, retry: { max_attempts: 1 } })).status).toBe(200);
    expect((await api.call("PUT", "/v1/apps/bad", { url: app.url, nope: 1 })).status).toBe(400);
    expect((await api.putApp("gone", { url: app.url })).status).toBe(201);
    expect((await api.call("DELETE", "/v1/apps/gone")).status).toBe(204);
    expect((await api.call("GET", "/v1/apps/gone")).status).toBe(404);
    expect((await api.call("GET", "/v1/stats?window=24h")).json.window).toBe("24h");
    expect((await api.call("GET", "/v1/project")).json).toEqual({ project: "dev" });
    expect((await fetch(`${mesh.ingressUrl}/healthz`)).status).toBe(200);
  });
});

describe("/docs", () => {
  it("is served without a key and renders the document with no network beyond the gateway", async () => {
    const res = await fetch(`${mesh.ingressUrl}/docs`);
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/https?:/);
    const html = await res.text();
    for (const src of html.match(/\/docs\/assets\/[^"]+/g) ?? []) {
      expect((await fetch(`${mesh.ingressUrl}${src}`)).status, src).toBe(200);
    }

    // Fail loudly: a missing browser is a broken machine, never a skipped test.
    const CHROMIUM = "/usr/bin/chromium";
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      timeout: 30_000,
    });
    try {
      const page = await browser.newPage();
      const elsewhere: string[] = [];
      // Offline: anything but the gateway itself is refused (and recorded).
      await page.route("**/*", (route) => {
        if (route.request().url().startsWith(mesh.ingressUrl)) return route.continue();
        elsewhere.push(route.request().url());
        return route.abort();
      });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(`${mesh.ingressUrl}/docs`);
      await page.getByText("List runs, newest first").first().waitFor({ timeout: 20_000 });
      expect(await page.getByText("Longhaul HTTP API").count()).toBeGreaterThan(0);
      expect(elsewhere).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
