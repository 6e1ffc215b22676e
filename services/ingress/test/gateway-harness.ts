import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { createRegistry, type Registry } from "@longhaul/shared/metrics";
import { appsPb } from "@longhaul/shared/proto";
import { resultUrlKey } from "@longhaul/shared/result-url";
import { createAdminClient } from "../src/adapters/grpc/admin-client.js";
import { createInvokerClient } from "../src/adapters/grpc/invoker-client.js";
import { createNotifierClient } from "../src/adapters/grpc/notifier-client.js";
import { createSchedulerClients } from "../src/adapters/grpc/scheduler-client.js";
import { createHttpGateway, type HttpGateway } from "../src/adapters/http/server.js";
import { createAuthenticator } from "../src/core/auth.js";
import type { MeshPorts } from "../src/core/ports.js";
import { TOKEN, startFakeMesh, type FakeMesh } from "./fake-mesh.js";

/** A gateway under test: real HTTP in front of real gRPC clients of the fake mesh. */

export const MAX_BODY = 1024;
export const DEV = { authorization: "Bearer key-dev" };

/** A gateway on an ephemeral port over the given ports. */
export async function startGateway(ports: MeshPorts): Promise<{ gateway: HttpGateway; base: string; registry: Registry }> {
  const registry = createRegistry("ingress-test");
  const gateway = createHttpGateway({
    log: createLogger("ingress-test", "silent"),
    registry,
    ports,
    authenticator: createAuthenticator(ports.keys, { cacheSeconds: 5 }),
    limits: { maxBodyBytes: MAX_BODY, sseHeartbeatSeconds: 1, sseMaxSeconds: 30, feedMaxWatched: 5 },
    resultUrlKey: resultUrlKey(TOKEN),
  });
  const port = await gateway.listen("127.0.0.1", 0);
  return { gateway, base: `http://127.0.0.1:${port}`, registry };
}

/** The ingress's real gRPC clients of the given addresses, as mesh ports. */
export function meshPorts(schedulerAddr: string, invokerAddr: string, notifierAddr: string) {
  const scheduler = createSchedulerClients(schedulerAddr, TOKEN, { log: createLogger("ingress-test", "silent") });
  const notifier = createNotifierClient(notifierAddr, TOKEN);
  const invoker = createInvokerClient(invokerAddr, TOKEN);
  const admin = createAdminClient(schedulerAddr);
  const ports: MeshPorts = { ...scheduler, admin, webhooks: notifier, invoker };
  return {
    ports,
    close: () => [scheduler, notifier, invoker, admin].forEach((c) => c.close()),
  };
}

/** A port nothing listens on. */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The `error` object of a JSON error answer. */
export async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  expect(res.headers.get("content-type")).toMatch(/application\/json/);
  return ((await res.json()) as { error: { code: string; message: string } }).error;
}

/** A fake mesh with app `dev/echo`, and a gateway over it. */
export async function startHarness(): Promise<{ mesh: FakeMesh; base: string; registry: Registry; stop(): Promise<void> }> {
  const mesh = await startFakeMesh();
  const clients = meshPorts(mesh.schedulerAddr, mesh.invokerAddr, mesh.notifierAddr);
  const { gateway, base, registry } = await startGateway(clients.ports);
  mesh.apps.set("dev/echo", appsPb.App.fromPartial({ name: "echo", url: "http://app.internal:9000/base", timeoutSeconds: 60 }));
  return {
    mesh,
    base,
    registry,
    async stop() {
      await gateway.close(100);
      clients.close();
      await mesh.stop();
    },
  };
}
