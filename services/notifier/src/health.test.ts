import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeGenericClientConstructor, credentials, type Client } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { randomUUID } from "node:crypto";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { LonghaulError } from "@longhaul/shared/errors";
import { createLogger } from "@longhaul/shared/logger";
import { createGrpcServer, unary, type GrpcServer } from "@longhaul/shared/grpc";
import { runsPb, schedulerPb } from "@longhaul/shared/proto";
import { natsNames } from "@longhaul/shared/nats";
import { createTestDatabase, createTestNats } from "../../../tests/helpers/isolation.js";
import { loadConfig } from "./config.js";
import { startNotifier, type RunningNotifier } from "./service.js";
import { eventually, startReceiver, type Receiver } from "./testing/receiver.js";
import { startTcpProxy } from "./testing/tcp-proxy.js";

// Real Postgres and NATS behind TCP proxies that the test cuts and restores:
// health must say NOT_SERVING while either is gone, SERVING once back, and
// webhooks must flow again after each outage.

type HealthClient = Client & {
  check(req: { service: string }, opts: { deadline: number }, cb: (e: Error | null, r: { status: string | number }) => void): void;
};

const log = createLogger("notifier-health-test", "silent");
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let nats: Awaited<ReturnType<typeof createTestNats>>;
let pgProxy: Awaited<ReturnType<typeof startTcpProxy>>;
let natsProxy: Awaited<ReturnType<typeof startTcpProxy>>;
let notifier: RunningNotifier;
let health: HealthClient;
let scheduler: GrpcServer;
let receiver: Receiver;
let nc: NatsConnection;
const token = "notifier-health-test-token";
const runs = new Map<string, schedulerPb.GetDeliveryInputResponse>();

beforeAll(async () => {
  database = await createTestDatabase();
  nats = await createTestNats();
  const pg = new URL(database.url);
  const nu = new URL(nats.url.split(",")[0]!);
  pgProxy = await startTcpProxy({ host: pg.hostname, port: Number(pg.port || 5432) });
  natsProxy = await startTcpProxy({ host: nu.hostname, port: Number(nu.port || 4222) });
  pg.host = `127.0.0.1:${pgProxy.port}`;
  scheduler = createGrpcServer({ log, address: "127.0.0.1:0", internalToken: token });
  scheduler.add(
    schedulerPb.SchedulerInternalServiceService,
    {
      getDeliveryInput: unary(log, "GetDeliveryInput", async (req: schedulerPb.GetDeliveryInputRequest) => {
        const run = runs.get(req.runId);
        if (!run) throw new LonghaulError("not_found", "no such run");
        return run;
      }),
      updateWebhookState: unary(log, "UpdateWebhookState", async () => ({})),
    },
    { internal: true },
  );
  const schedulerPort = await scheduler.start();
  receiver = await startReceiver();
  nc = await connect({ servers: nats.url });
  notifier = await startNotifier(
    loadConfig({
      DATABASE_URL: pg.toString(),
      LONGHAUL_MIGRATE_AT_START: "true",
      NATS_URL: `nats://127.0.0.1:${natsProxy.port}`,
      LONGHAUL_NATS_PREFIX: nats.prefix,
      LONGHAUL_INTERNAL_TOKEN: token,
      SCHEDULER_ADDR: `127.0.0.1:${schedulerPort}`,
      LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true",
      NOTIFIER_GRPC_HOST: "127.0.0.1",
      NOTIFIER_GRPC_PORT: "0",
      NOTIFIER_METRICS_HOST: "127.0.0.1",
      NOTIFIER_METRICS_PORT: "0",
      NOTIFIER_POLL_MS: "50",
    }),
    log,
  );
  const Health = makeGenericClientConstructor(healthService, "Health") as unknown as new (
    address: string,
    creds: ReturnType<typeof credentials.createInsecure>,
  ) => HealthClient;
  health = new Health(`127.0.0.1:${notifier.grpcPort}`, credentials.createInsecure());
});

afterAll(async () => {
  health?.close();
  await pgProxy?.up().catch(() => undefined);
  await natsProxy?.up().catch(() => undefined);
  await notifier?.stop();
  await nc?.close();
  await scheduler?.stop(1_000);
  await receiver?.close();
  await pgProxy?.close();
  await natsProxy?.close();
  await nats?.cleanup();
  await database?.drop();
});

function status(): Promise<string> {
  return new Promise((resolve, reject) =>
    health.check({ service: "" }, { deadline: Date.now() + 2_000 }, (err, res) =>
      err ? reject(err) : resolve(res.status === 1 ? "SERVING" : res.status === 2 ? "NOT_SERVING" : String(res.status)),
    ),
  );
}

/** Publishes a finished run (straight to NATS, not through the proxy) and waits for its webhook. */
async function webhookFlows(): Promise<void> {
  const runId = randomUUID();
  runs.set(runId, {
    runId,
    project: "dev",
    app: "echo",
    webhookUrl: `${receiver.url}/hook/${runId}`,
    status: runsPb.RunStatus.RUN_STATUS_SUCCEEDED,
    statusCode: 200,
    contentType: "text/plain",
    body: Buffer.from("done"),
    errorCode: "",
    errorMessage: "",
    finishedAt: new Date(),
    traceparent: "",
    bodyTruncated: false,
    labels: {},
    createdAt: new Date(),
    startedAt: new Date(),
    requestBody: Buffer.alloc(0),
    bodyGone: false,
  });
  const payload = JSON.stringify({ run_id: runId, project: "dev", app: "echo", status: "succeeded" });
  await jetstream(nc).publish(natsNames(nats.prefix).finished("dev"), payload, { msgID: `${runId}:finished` });
  await eventually(() => receiver.received.some((r) => r.url.endsWith(runId)), 20_000);
}

const becomes = (want: string) => eventually(async () => (await status()) === want, 15_000, 50);

describe("notifier health", () => {
  it("is SERVING once started", async () => {
    await becomes("SERVING");
    await webhookFlows();
  });

  it("is NOT_SERVING while Postgres is unreachable, and SERVING again after", async () => {
    await pgProxy.down();
    await becomes("NOT_SERVING");
    await pgProxy.up();
    await becomes("SERVING");
    await webhookFlows();
  });

  it("is NOT_SERVING while NATS is unreachable, and SERVING again after", async () => {
    await natsProxy.down();
    await becomes("NOT_SERVING");
    await natsProxy.up();
    await becomes("SERVING");
    await webhookFlows();
    expect(await status()).toBe("SERVING");
  });
});
