import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { createRegistry } from "@longhaul/shared/metrics";
import { createAuthenticator } from "../../core/auth.js";
import type { MeshPorts } from "../../core/ports.js";
import { createHttpGateway, type HttpGateway } from "./server.js";

// How long the gateway keeps an idle keep-alive connection (INGRESS_KEEP_ALIVE_TIMEOUT_MS),
// on a real server and a raw socket. No mesh: `/healthz` is given a fake scheduler health, and
// `/v1/runs` without a key is refused (401) before any port is used.
let gateway: HttpGateway | undefined;
afterEach(async () => {
  await gateway?.close(100);
  gateway = undefined;
});

/** A gateway whose `/healthz` takes `healthMs` (a request in flight for that long). */
function start(keepAliveTimeoutMs?: number, healthMs = 0): HttpGateway {
  const schedulerServing = async () => {
    await new Promise((r) => setTimeout(r, healthMs));
    return true;
  };
  gateway = createHttpGateway({
    log: createLogger("keep-alive-test", "silent"),
    registry: createRegistry("keep-alive-test"),
    ports: { health: { schedulerServing } } as unknown as MeshPorts,
    authenticator: createAuthenticator({ resolve: async () => ({ project: "x", scopes: [] }) } as never, { cacheSeconds: 0 }),
    limits: { maxBodyBytes: 1, sseHeartbeatSeconds: 1, sseMaxSeconds: 10, feedMaxWatched: 1 },
    resultUrlKey: Buffer.alloc(32),
    ...(keepAliveTimeoutMs === undefined ? {} : { keepAliveTimeoutMs }),
  });
  return gateway;
}

describe("the gateway's keep-alive timeout", () => {
  it("is 65 s by default (Node's own is 5 s), with headersTimeout above it", () => {
    const { server } = start();
    expect(server.keepAliveTimeout).toBe(65_000);
    expect(server.headersTimeout).toBeGreaterThan(server.keepAliveTimeout);
  });

  it("keeps an idle keep-alive connection open for the time configured, then closes it", async () => {
    const g = start(300);
    expect(g.server.keepAliveTimeout).toBe(300);
    expect(g.server.headersTimeout).toBeGreaterThan(300);
    const port = await g.listen("127.0.0.1", 0);
    const socket = connect(port, "127.0.0.1");
    let answered = 0;
    let response = "";
    const closed = new Promise<number>((resolve) => socket.on("close", () => resolve(Date.now())));
    socket.on("data", (chunk: Buffer) => {
      response += chunk.toString();
      answered ||= Date.now();
    });
    socket.write("GET /v1/runs HTTP/1.1\r\nHost: localhost\r\n\r\n");
    const idleFor = (await closed) - answered;
    expect(response).toMatch(/^HTTP\/1\.1 401 /);
    expect(response).toMatch(/\r\nConnection: keep-alive\r\n/i);
    // Open for the time configured (not cut early), and closed by the gateway once idle past it
    // (Node 24 waits server.keepAliveTimeoutBuffer, 1 s, more): long before Node's default 5 s would.
    expect(idleFor).toBeGreaterThanOrEqual(150);
    expect(idleFor).toBeLessThan(5_000);
  });

  it("at close, a request in flight is answered with `Connection: close`: the close waits for no idle keep-alive", async () => {
    const g = start(undefined, 300);
    const port = await g.listen("127.0.0.1", 0);
    const socket = connect(port, "127.0.0.1");
    let response = "";
    socket.on("data", (chunk: Buffer) => (response += chunk.toString()));
    const socketClosed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await g.close(30_000);
    await socketClosed;
    gateway = undefined;
    expect(response).toMatch(/^HTTP\/1\.1 200 /);
    expect(response).toMatch(/\r\nConnection: close\r\n/i);
    // Not the 65-s keep-alive, nor the 30-s grace: as soon as the answer was out.
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
