// gRPC TLS across the whole mesh: the four services as processes with
// LONGHAUL_GRPC_TLS_CERT/_KEY (and _CA for mutual TLS) set to certificates
// openssl made for this file. Every path between them (gateway → scheduler,
// invoker and notifier; invoker → scheduler; notifier → scheduler) carries a
// run, and a client without the right certificate, or without TLS, is refused.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { credentials, makeGenericClientConstructor, type ChannelCredentials, type Client } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { gateway, startPeer, type Peer } from "./helpers/peers.js";

type HealthClient = Client & {
  check(req: { service: string }, opts: { deadline: number }, cb: (e: (Error & { code?: number }) | null, r: { status: string }) => void): void;
};
const Health = makeGenericClientConstructor(healthService, "Health") as unknown as new (address: string, creds: ChannelCredentials) => HealthClient;
const UNAVAILABLE = 14;

let mesh: TestMesh;
let app: Peer;
let hook: Peer;
let api: ReturnType<typeof gateway>;

beforeAll(async () => {
  app = await startPeer();
  hook = await startPeer();
});

afterAll(async () => {
  await app?.close();
  await hook?.close();
});

/** grpc.health.v1 Check of the scheduler with these credentials: the status, or the gRPC error code. */
function check(creds: ChannelCredentials, of: TestMesh = mesh): Promise<{ status?: string; code?: number }> {
  const client = new Health(of.addresses.scheduler.split(",")[0]!, creds);
  return new Promise((resolve) => {
    client.check({ service: "" }, { deadline: Date.now() + 5_000 }, (err, res) => {
      client.close();
      resolve(err ? { code: err.code } : { status: res.status });
    });
  });
}

/** The `grpc_tls` field of each service's ready line. */
function readyTls(of: TestMesh): Record<string, string | undefined> {
  return Object.fromEntries(
    (["scheduler", "invoker", "notifier", "ingress"] as const).map((name) => [
      name,
      of
        .logs(name)
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { msg?: string; grpc_tls?: string })
        .find((l) => l.msg === "ready")?.grpc_tls,
    ]),
  );
}

describe("a mesh with mutual TLS", () => {
  // One mesh at a time: this one stops before the next describe starts its own.
  beforeAll(async () => {
    mesh = await startTestMesh({ grpcTls: "mtls", env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true" } });
    api = gateway(mesh.ingressUrl, mesh.apiKey);
    expect((await api.putApp("echo", { url: app.url })).status).toBe(201);
  });
  afterAll(async () => {
    await mesh?.cleanup();
  });

  it("every service says so in its ready line", () => {
    expect(readyTls(mesh)).toEqual({ scheduler: "mutual", invoker: "mutual", notifier: "mutual", ingress: "mutual" });
  });

  it("runs an async request end to end: submit, the app called, the result stored, the webhook sent", async () => {
    app.handle((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ echoed: req.body.toString() }));
    });
    const submit = await api.call("POST", `/dev/echo/predict?async=true&webhookEndpoint=${encodeURIComponent(`${hook.url}/hook`)}`, '{"n":1}', {
      "content-type": "application/json",
    });
    expect(submit.status).toBe(202);
    const runId: string = submit.json.run_id;
    const [call] = await app.waitFor(1, "/predict");
    expect(call!.body.toString()).toBe('{"n":1}');
    expect(await api.finished(runId)).toMatchObject({ run_id: runId, status: "succeeded", status_code: 200 });
    const result = await api.call("GET", `/v1/runs/${runId}/result`);
    expect(JSON.parse(result.text)).toEqual({ echoed: '{"n":1}' });
    const [delivery] = await hook.waitFor(1, "/hook");
    expect(delivery!.headers["x-longhaul-run-id"]).toBe(runId);
  });

  it("passes a sync call through the invoker, reads the webhook secret from the notifier, and checks the scheduler's health for /healthz", async () => {
    app.handle((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("sync over mTLS");
    });
    const sync = await api.call("POST", "/dev/echo/now", "x");
    expect(sync.status).toBe(200);
    expect(sync.text).toBe("sync over mTLS");
    const secret = await api.call("GET", "/v1/webhooks/secret");
    expect(secret.status).toBe(200);
    expect(secret.json.secret).toMatch(/^whsec_/);
    const health = await fetch(`${mesh.ingressUrl}/healthz`);
    expect([health.status, await health.json()]).toEqual([200, { status: "ok" }]);
  });

  it("answers a client with a certificate of the CA", async () => {
    expect(await check(mesh.clientTls!.channel)).toEqual({ status: "SERVING" });
  });

  it("the exec probe of deploy/k8s (grpc-health-probe.js) sees each server SERVING with the service's TLS settings, and fails without them", () => {
    const probe = fileURLToPath(new URL("../services/shared/dist/grpc-health-probe.js", import.meta.url));
    const tlsEnv = { LONGHAUL_GRPC_TLS_CERT: mesh.pki!.cert, LONGHAUL_GRPC_TLS_KEY: mesh.pki!.key, LONGHAUL_GRPC_TLS_CA: mesh.pki!.ca };
    const run = (port: number, env: Record<string, string>) =>
      spawnSync(process.execPath, [probe, String(port), "3000"], { env: { PATH: process.env.PATH, ...env }, encoding: "utf8" });
    const [scheduler, invoker, notifier] = (["scheduler", "invoker", "notifier"] as const).map(
      (name) => mesh.processes.find((p) => p.name === name)!.ports[`${name.toUpperCase()}_GRPC_PORT`]!,
    );
    for (const port of [scheduler!, invoker!, notifier!]) {
      const ok = run(port, tlsEnv);
      expect(ok.status, ok.stderr).toBe(0);
    }
    const plain = run(scheduler!, {});
    expect(plain.status).toBe(1);
    expect(plain.stderr).toContain("UNAVAILABLE");
  });

  it("refuses a client without a certificate, one with a certificate of another CA, and a plaintext one", async () => {
    const pki = mesh.pki!;
    const trustsCa = readFileSync(pki.ca);
    expect(await check(credentials.createSsl(trustsCa))).toEqual({ code: UNAVAILABLE });
    // Trusts the mesh's CA but presents a certificate of another (Longhaul's own settings refuse to start so).
    const rogue = credentials.createSsl(trustsCa, readFileSync(pki.rogue.key), readFileSync(pki.rogue.cert));
    expect(await check(rogue)).toEqual({ code: UNAVAILABLE });
    expect(await check(credentials.createInsecure())).toEqual({ code: UNAVAILABLE });
  });
});

describe("a mesh with TLS and no CA set (servers ask no client certificate)", () => {
  let tlsMesh: TestMesh;
  beforeAll(async () => {
    tlsMesh = await startTestMesh({ grpcTls: "tls" });
  });
  afterAll(async () => {
    await tlsMesh?.cleanup();
  });

  it("runs an async request end to end, answers a client that trusts the CA and presents nothing, refuses plaintext", async () => {
    expect(readyTls(tlsMesh)).toEqual({ scheduler: "on", invoker: "on", notifier: "on", ingress: "on" });
    const api = gateway(tlsMesh.ingressUrl, tlsMesh.apiKey);
    expect((await api.putApp("echo", { url: app.url })).status).toBe(201);
    app.handle((req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`tls ${req.body.toString()}`);
    });
    const submit = await api.call("POST", "/dev/echo/run?async=true", "body");
    expect(submit.status).toBe(202);
    expect(await api.finished(submit.json.run_id)).toMatchObject({ status: "succeeded", status_code: 200 });
    expect((await api.call("GET", `/v1/runs/${submit.json.run_id}/result`)).text).toBe("tls body");
    expect(await check(credentials.createSsl(readFileSync(tlsMesh.pki!.ca)), tlsMesh)).toEqual({ status: "SERVING" });
    expect(await check(credentials.createInsecure(), tlsMesh)).toEqual({ code: UNAVAILABLE });
  });
});
