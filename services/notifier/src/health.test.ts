import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeGenericClientConstructor, credentials, type Client } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { createLogger } from "@longhaul/shared";
import { createTestDatabase, createTestNats } from "../../../tests/helpers/isolation.js";
import { loadConfig } from "./config.js";
import { startNotifier, type RunningNotifier } from "./service.js";
import { eventually } from "./testing/receiver.js";
import { startTcpProxy } from "./testing/tcp-proxy.js";

// Real Postgres and NATS behind TCP proxies that the test cuts and restores:
// health must say NOT_SERVING while either is gone, and SERVING once back.

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

beforeAll(async () => {
  database = await createTestDatabase();
  nats = await createTestNats();
  const pg = new URL(database.url);
  const nu = new URL(nats.url.split(",")[0]!);
  pgProxy = await startTcpProxy({ host: pg.hostname, port: Number(pg.port || 5432) });
  natsProxy = await startTcpProxy({ host: nu.hostname, port: Number(nu.port || 4222) });
  pg.host = `127.0.0.1:${pgProxy.port}`;
  notifier = await startNotifier(
    loadConfig({
      DATABASE_URL: pg.toString(),
      NATS_URL: `nats://127.0.0.1:${natsProxy.port}`,
      LONGHAUL_NATS_PREFIX: nats.prefix,
      LONGHAUL_INTERNAL_TOKEN: "notifier-health-test-token",
      SCHEDULER_ADDR: "127.0.0.1:1",
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

const becomes = (want: string) => eventually(async () => (await status()) === want, 15_000, 50);

describe("notifier health", () => {
  it("is SERVING once started", async () => {
    await becomes("SERVING");
  });

  it("is NOT_SERVING while Postgres is unreachable, and SERVING again after", async () => {
    await pgProxy.down();
    await becomes("NOT_SERVING");
    await pgProxy.up();
    await becomes("SERVING");
  });

  it("is NOT_SERVING while NATS is unreachable, and SERVING again after", async () => {
    await natsProxy.down();
    await becomes("NOT_SERVING");
    await natsProxy.up();
    await becomes("SERVING");
    expect(await status()).toBe("SERVING");
  });
});
