/**
 * The invoker process through a NATS outage: health turns NOT_SERVING while
 * NATS is gone, SERVING again once it is back, and dispatches flow again.
 * Uses a nats-server of its own (the shared one must not be stopped).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { credentials, makeGenericClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { jetstream } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { service as healthService } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { natsNames } from "@longhaul/shared/nats";
import { FakeSchedulerServer } from "./testing/fake-scheduler-server.js";

const TOKEN = "test-internal-token-0123456789";
const MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const PREFIX = "outage";

let natsPort: number;
let natsUrl: string;
const storeDir = mkdtempSync(path.join(tmpdir(), "lh-invoker-nats-"));
let natsProc: ChildProcess | undefined;
let invoker: ChildProcess;
let grpcPort = 0;
let app: Server;
let appBase: string;
const scheduler = new FakeSchedulerServer(TOKEN);

function startNats(): ChildProcess {
  const p = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(natsPort), "-js", "-sd", storeDir], {
    stdio: "ignore",
    detached: true,
  });
  return p;
}

function killGroup(p: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!p?.pid || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  const gone = new Promise<void>((r) => p.once("exit", () => r()));
  process.kill(-p.pid, signal);
  return gone;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function natsReady(): Promise<NatsConnection> {
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      return await connect({ servers: natsUrl });
    } catch (err) {
      if (Date.now() > until) throw err;
      await sleep(100);
    }
  }
}

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first (npm test does)`);
  natsPort = await freePort();
  natsUrl = `nats://127.0.0.1:${natsPort}`;
  natsProc = startNats();
  await (await natsReady()).close();
  app = createServer((req, res) => {
    req.resume();
    res.end("ok");
  });
  await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
  appBase = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
  const schedulerAddr = await scheduler.start();

  invoker = spawn(process.execPath, ["--import", "@longhaul/shared/otel-register", MAIN], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    env: {
      ...process.env,
      LONGHAUL_INTERNAL_TOKEN: TOKEN,
      SCHEDULER_ADDR: schedulerAddr,
      NATS_URL: natsUrl,
      LONGHAUL_NATS_PREFIX: PREFIX,
      INVOKER_GRPC_HOST: "127.0.0.1",
      INVOKER_GRPC_PORT: "0",
      INVOKER_METRICS_HOST: "127.0.0.1",
      INVOKER_METRICS_PORT: "0",
      INVOKER_DRAIN_SECONDS: "0",
    },
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
  });
  let buf = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("invoker not ready")), 60_000);
    invoker.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split("\n")) {
        if (!line.includes('"msg":"ready"')) continue;
        grpcPort = (JSON.parse(line) as { grpc_port: number }).grpc_port;
        clearTimeout(timer);
        resolve();
      }
    });
  });
});

afterAll(async () => {
  await killGroup(invoker, "SIGKILL");
  await killGroup(natsProc, "SIGKILL");
  await scheduler.stop();
  app.closeAllConnections();
  await new Promise((r) => app.close(r));
  rmSync(storeDir, { recursive: true, force: true });
});

function health(): Promise<string> {
  const Health = makeGenericClientConstructor(healthService, "grpc.health.v1.Health");
  const client = new Health(`127.0.0.1:${grpcPort}`, credentials.createInsecure());
  return new Promise<string>((resolve, reject) =>
    (client as unknown as { check: Function }).check(
      { service: "" },
      { deadline: Date.now() + 3_000 },
      (err: ServiceError | null, res: { status: string }) => {
        client.close();
        return err ? reject(err) : resolve(res.status);
      },
    ),
  );
}

describe("invoker through a NATS outage", () => {
  it("is NOT_SERVING while NATS is down, SERVING after, and takes dispatches again", async () => {
    expect(await health()).toBe("SERVING");
    await killGroup(natsProc, "SIGKILL");
    await waitFor(async () => (await health()) === "NOT_SERVING", 10_000);

    natsProc = startNats();
    const nc = await natsReady();
    await waitFor(async () => (await health()) === "SERVING", 15_000);

    const runId = `outage-${Date.now()}`;
    scheduler.add({ runId, attempt: 1, url: `${appBase}/after-outage` });
    await jetstream(nc).publish(natsNames(PREFIX).dispatch("dev", "echo"), JSON.stringify({ run_id: runId, attempt: 1 }), {
      msgID: `${runId}:1`,
    });
    await waitFor(() => scheduler.completions.some((c) => c.runId === runId), 20_000);
    await nc.close();
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await sleep(100);
  }
}
