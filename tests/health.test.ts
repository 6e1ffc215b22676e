// gRPC health: every gRPC server of the mesh (scheduler, invoker,
// notifier as processes) answers `grpc.health.v1.Health/Check` NOT_SERVING
// while a dependency it needs is down and SERVING once it is back, and runs
// flow again afterwards. NATS is a nats-server of this file's own (stopped and
// started again on the same port and data dir, so other test files are not
// disturbed); Postgres is the shared one behind a TCP proxy this file cuts.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { credentials, makeGenericClientConstructor, type Client } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { startTcpProxy } from "../services/notifier/src/testing/tcp-proxy.js";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

type HealthClient = Client & {
  check(req: { service: string }, opts: { deadline: number }, cb: (e: Error | null, r: { status: number }) => void): void;
};
const Health = makeGenericClientConstructor(healthService, "Health") as unknown as new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => HealthClient;

const GRPC_SERVICES = {
  scheduler: "SCHEDULER_GRPC_PORT",
  invoker: "INVOKER_GRPC_PORT",
  notifier: "NOTIFIER_GRPC_PORT",
} as const;
type GrpcService = keyof typeof GRPC_SERVICES;

/** nats-server's path (Debian puts it in /usr/sbin, often not on a user's PATH). */
function natsServerBinary(): string {
  const dirs = [...(process.env.PATH ?? "").split(path.delimiter), "/usr/sbin", "/usr/bin", "/usr/local/bin"];
  const found = dirs.filter(Boolean).map((d) => path.join(d, "nats-server")).find((f) => fs.existsSync(f));
  if (!found) throw new Error("nats-server is not installed (scripts/lib/nats.mjs installs it for npm test)");
  return found;
}

/** A port free a moment ago on loopback. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** True once a NATS server at the port greets a new connection with INFO. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.setTimeout(1000);
    s.once("data", (d) => {
      s.destroy();
      resolve(d.toString().startsWith("INFO"));
    });
    s.once("error", () => resolve(false));
    s.once("timeout", () => {
      s.destroy();
      resolve(false);
    });
  });
}

/** A nats-server with JetStream on a fixed port and data dir, which the test stops and starts. */
function ownNats(port: number, dir: string) {
  const bin = natsServerBinary();
  let child: ChildProcess | undefined;
  return {
    url: `nats://127.0.0.1:${port}`,
    async start() {
      if (child && child.exitCode === null) return;
      const log = fs.openSync(`${dir}.log`, "a");
      const started = spawn(bin, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir], { stdio: ["ignore", log, log] });
      fs.closeSync(log);
      child = started;
      await eventually(async () => {
        if (started.exitCode !== null) throw new Error(`nats-server exited: ${fs.readFileSync(`${dir}.log`, "utf8").slice(-500)}`);
        return greets(port);
      }, 15_000, "nats-server to listen");
    },
    /** SIGTERM (JetStream is flushed), SIGKILL after 10 s. */
    async stop() {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise((r) => c.once("exit", r));
      c.kill("SIGTERM");
      const timer = setTimeout(() => c.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

let dataDir: string;
let nats: ReturnType<typeof ownNats>;
let pgProxy: Awaited<ReturnType<typeof startTcpProxy>>;
let mesh: TestMesh;
let app: Peer;
let api: ReturnType<typeof gateway>;
const clients = new Map<GrpcService, HealthClient>();

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lh-health-nats-"));
  nats = ownNats(await freePort(), path.join(dataDir, "js"));
  await nats.start();
  const shared = new URL(process.env.DATABASE_URL ?? "postgres://127.0.0.1:5432/postgres");
  pgProxy = await startTcpProxy({ host: shared.hostname, port: Number(shared.port || 5432) });
  app = await startPeer();
  mesh = await startTestMesh({
    natsUrl: nats.url,
    databaseUrl: (url) => {
      const u = new URL(url);
      u.host = `127.0.0.1:${pgProxy.port}`;
      return u.toString();
    },
  });
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  expect((await api.putApp("pulse", { url: app.url })).status).toBe(201);
  for (const [name, portVar] of Object.entries(GRPC_SERVICES) as [GrpcService, string][]) {
    const p = mesh.processes.find((x) => x.name === name)!;
    clients.set(name, new Health(`127.0.0.1:${p.ports[portVar]}`, credentials.createInsecure()));
  }
});

afterAll(async () => {
  for (const c of clients.values()) c.close();
  // Dependencies back first, so that the services stop cleanly.
  await pgProxy?.up().catch(() => undefined);
  await nats?.start().catch(() => undefined);
  await mesh?.cleanup();
  await nats?.stop();
  await pgProxy?.close();
  await app?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

function status(name: GrpcService, service = ""): Promise<string> {
  return new Promise((resolve, reject) =>
    clients.get(name)!.check({ service }, { deadline: Date.now() + 2_000 }, (err, res) =>
      err ? reject(err) : resolve(res.status === 1 ? "SERVING" : res.status === 2 ? "NOT_SERVING" : String(res.status)),
    ),
  );
}

/** Waits until each named service reports `want`; returns how long that took, ms. */
async function becomes(names: GrpcService[], want: string): Promise<number> {
  const t0 = Date.now();
  await Promise.all(
    names.map((n) => eventually(async () => (await status(n)) === want, 20_000, `${n} health ${want}`)),
  );
  return Date.now() - t0;
}

/** A run goes all the way through: the mesh works again. */
async function runFlows(): Promise<void> {
  const r = await api.call("POST", "/dev/pulse/beat?async=true", "{}");
  expect(r.status).toBe(202);
  expect((await api.finished(r.json.run_id as string)).status).toBe("succeeded");
}

const ALL: GrpcService[] = ["scheduler", "invoker", "notifier"];

describe("gRPC health of every service", () => {
  it("is SERVING once started, for the server as a whole and for each service it serves", async () => {
    await becomes(ALL, "SERVING");
    expect(await status("scheduler", "longhaul.v1.RunService")).toBe("SERVING");
    expect(await status("invoker", "longhaul.internal.v1.InvokerService")).toBe("SERVING");
    expect(await status("notifier", "longhaul.internal.v1.NotifierInternalService")).toBe("SERVING");
    await runFlows();
  });

  it("is NOT_SERVING on every service while NATS is down, and SERVING again once it is back", async () => {
    await nats.stop();
    const down = await becomes(ALL, "NOT_SERVING");
    expect(await status("scheduler", "longhaul.v1.RunService")).toBe("NOT_SERVING");
    await nats.start();
    const up = await becomes(ALL, "SERVING");
    console.log(`NATS stopped: NOT_SERVING everywhere within ${down} ms; restarted: SERVING within ${up} ms`);
    await runFlows();
  });

  it("is NOT_SERVING on the services that use Postgres while it is unreachable, and SERVING again after", async () => {
    await pgProxy.down();
    const down = await becomes(["scheduler", "notifier"], "NOT_SERVING");
    // The invoker needs no Postgres: it keeps serving.
    expect(await status("invoker")).toBe("SERVING");
    await pgProxy.up();
    const up = await becomes(["scheduler", "notifier"], "SERVING");
    console.log(`Postgres cut: NOT_SERVING within ${down} ms; restored: SERVING within ${up} ms`);
    await runFlows();
  });
});
