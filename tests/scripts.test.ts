// The dev/test plumbing in scripts/lib: ensureDeps (reuse or start Postgres and
// NATS) and startMesh (spawn, wire, restart and stop service processes; here
// with small stand-in services, since the real ones are covered by the e2e tests).
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { ensureDeps } from "../scripts/lib/deps.mjs";
import { startMesh, type Mesh } from "../scripts/lib/mesh.mjs";

const quiet = () => {};

function answers(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect({ host: u.hostname, port: Number(u.port || defaultPort) });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755); // as root, Postgres runs as the postgres user
  return dir;
}

describe("ensureDeps", () => {
  it("uses DATABASE_URL and NATS_URL when they answer, starting nothing", async () => {
    const dir = tempDir("lh-deps-reuse-");
    const deps = await ensureDeps({ dataDir: dir, log: quiet, handleSignals: false });
    try {
      expect(deps.databaseUrl).toBe(process.env.DATABASE_URL);
      expect(deps.natsUrl).toBe(process.env.NATS_URL);
      expect(deps.started).toEqual({ postgres: false, nats: false });
      expect(fs.existsSync(path.join(dir, "pg"))).toBe(false);
    } finally {
      await deps.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("starts its own Postgres and NATS JetStream when nothing answers, and stops them", async () => {
    const dir = tempDir("lh-deps-own-");
    const env = { DATABASE_URL: "postgres://postgres@127.0.0.1:1/x", NATS_URL: "nats://127.0.0.1:1" };
    const deps = await ensureDeps({ dataDir: dir, log: quiet, fast: true, env, handleSignals: false });
    try {
      expect(deps.started).toEqual({ postgres: true, nats: true });
      expect(new URL(deps.databaseUrl).pathname).toBe("/longhaul");

      const client = new pg.Client({ connectionString: deps.databaseUrl });
      await client.connect();
      const { rows } = await client.query<{ db: string; fsync: string }>(
        "select current_database() as db, current_setting('fsync') as fsync",
      );
      await client.end();
      expect(rows[0]).toEqual({ db: "longhaul", fsync: "off" });

      const nc = await connect({ servers: deps.natsUrl });
      const jsm = await jetstreamManager(nc);
      const info = await jsm.getAccountInfo();
      await nc.close();
      expect(info.limits).toBeDefined();
    } finally {
      await deps.stop();
    }
    expect(await answers(deps.databaseUrl, 5432)).toBe(false);
    expect(await answers(deps.natsUrl, 4222)).toBe(false);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

// A stand-in service: logs its wiring as JSON, listens on its first port
// variable, logs ready, and exits on SIGTERM, or fails at start when asked.
const FAKE_SERVICE = `
import http from "node:http";
const name = process.env.OTEL_SERVICE_NAME;
const log = (o) => process.stdout.write(JSON.stringify({ level: 30, ...o }) + "\\n");
if (process.env.FAKE_FAIL === name) { console.error("boom: cannot start"); process.exit(3); }
const portVar = Object.keys(process.env).find((k) => /_(GRPC|HTTP)_PORT$/.test(k) && process.env[k]);
log({ msg: "starting", name, portVar, env: {
  SCHEDULER_ADDR: process.env.SCHEDULER_ADDR, LONGHAUL_NATS_PREFIX: process.env.LONGHAUL_NATS_PREFIX,
  LONGHAUL_INTERNAL_TOKEN: process.env.LONGHAUL_INTERNAL_TOKEN, LONGHAUL_DEV_API_KEY: process.env.LONGHAUL_DEV_API_KEY,
  LONGHAUL_PUBLIC_URL: process.env.LONGHAUL_PUBLIC_URL, EXTRA: process.env.EXTRA } });
const server = http.createServer((req, res) => res.end(name));
server.listen(Number(process.env[portVar]), "127.0.0.1", () => log({ msg: "ready" }));
process.on("SIGTERM", () => { log({ msg: "stopped" }); server.close(() => process.exit(0)); });
`;

describe("startMesh", () => {
  let dir: string;
  let entry: (name: string) => string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "lh-mesh-"));
    fs.writeFileSync(path.join(dir, "fake.mjs"), FAKE_SERVICE);
    entry = () => path.join(dir, "fake.mjs");
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const base = () => ({
    databaseUrl: "postgres://unused",
    natsUrl: "nats://unused",
    entry,
    nodeArgs: [],
    migrate: false as const,
    logDir: path.join(dir, `logs-${Math.random().toString(16).slice(2)}`),
  });

  it("wires, restarts and stops every copy", async () => {
    const exits: string[] = [];
    // Each copy must listen on its own port (the fake binds its *_GRPC_PORT / LONGHAUL_HTTP_PORT).
    const mesh: Mesh = await startMesh({
      ...base(),
      onExit: (name, index, r) => exits.push(`${name}#${index}:${r.expected ? "expected" : "crash"}`),
      natsPrefix: "t_mesh",
      services: { scheduler: 2, invoker: 2 },
      env: { EXTRA: "x" },
      serviceEnv: { ingress: { EXTRA: "ingress-only" } },
    });
    try {
      expect(mesh.processes.map((p) => `${p.name}#${p.index}`)).toEqual([
        "scheduler#0",
        "scheduler#1",
        "invoker#0",
        "invoker#1",
        "notifier#0",
        "ingress#0",
      ]);
      expect(mesh.apiKey).toMatch(/^lh_dev_[0-9a-f]{32}$/);
      expect(mesh.metricsUrls.scheduler).toHaveLength(2);
      const res = await fetch(mesh.ingressUrl);
      expect(await res.text()).toBe("longhaul-ingress");

      const starting = (name: "scheduler" | "ingress", i = 0) =>
        JSON.parse(mesh.logs(name, i).split("\n")[0]!) as { env: Record<string, string> };
      const sched1 = starting("scheduler", 1).env;
      // Clients get every copy's address.
      expect(sched1.SCHEDULER_ADDR).toBe(mesh.addresses.scheduler);
      expect(mesh.addresses.scheduler.split(",")).toEqual(
        mesh.processes.filter((p) => p.name === "scheduler").map((p) => `127.0.0.1:${p.ports.SCHEDULER_GRPC_PORT}`),
      );
      expect(sched1).toMatchObject({
        LONGHAUL_NATS_PREFIX: "t_mesh",
        LONGHAUL_INTERNAL_TOKEN: mesh.internalToken,
        LONGHAUL_DEV_API_KEY: mesh.apiKey,
        LONGHAUL_PUBLIC_URL: mesh.ingressUrl,
        EXTRA: "x",
      });
      expect(starting("ingress").env.EXTRA).toBe("ingress-only");
      const ports = mesh.processes.flatMap((p) => Object.values(p.ports));
      expect(new Set(ports).size).toBe(ports.length);

      const before = mesh.processes.find((p) => p.name === "invoker" && p.index === 1)!;
      const exit = await mesh.kill("invoker", 1, "SIGKILL");
      expect(exit.signal).toBe("SIGKILL");
      expect(mesh.processes.find((p) => p.name === "invoker" && p.index === 1)!.alive).toBe(false);
      await mesh.start("invoker", 1);
      const after = mesh.processes.find((p) => p.name === "invoker" && p.index === 1)!;
      expect(after.alive).toBe(true);
      expect(after.pid).not.toBe(before.pid);
      expect(after.ports).toEqual(before.ports);
      expect(mesh.logs("invoker", 1).match(/"msg":"ready"/g)).toHaveLength(2);

      // A copy that dies by itself is reported as a crash.
      process.kill(-after.pid!, "SIGKILL");
      await expect.poll(() => exits).toContain("invoker#1:crash");
      expect(exits).toEqual(["invoker#1:expected", "invoker#1:crash"]);
    } finally {
      await mesh.stop();
    }
    expect(mesh.processes.every((p) => !p.alive)).toBe(true);
    expect(mesh.logs("scheduler", 0)).toContain('"msg":"stopped"');
  });

  it("fails with the last log lines of a copy that does not start, and stops the rest", async () => {
    const logDir = path.join(dir, "logs-fail");
    const error = await startMesh({ ...base(), logDir, env: { FAKE_FAIL: "longhaul-notifier" } }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(error?.message).toMatch(/notifier#0 exited before it was ready \(code 3/);
    expect(error?.message).toContain("boom: cannot start");
    // The scheduler and invoker that did start were stopped again.
    expect(fs.readFileSync(path.join(logDir, "scheduler-0.log"), "utf8")).toContain('"msg":"stopped"');
    expect(fs.existsSync(path.join(logDir, "ingress-0.log"))).toBe(false);
  });
});
