// Round-robin over an address list, retries of the methods named safe, and
// connection age, against real grpc-js servers on loopback. A copy "dies" by
// having the TCP proxy in front of it cut every connection and stop
// listening, as a kill -9 looks to a client.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Registry } from "prom-client";
import { commonEnvSchema, parseEnv } from "../config.js";
import { LonghaulError } from "../errors.js";
import { createLogger } from "../logger.js";
import { notifierPb } from "../proto/index.js";
import { credentials } from "@grpc/grpc-js";
import { callUnary, channelOptions, createClient, internalMetadata, serviceConfig } from "./client.js";
import { createGrpcServer, unary, type GrpcServer } from "./server.js";
import { AddressListError, grpcTarget } from "./targets.js";

const TOKEN = "t".repeat(24);
const log = createLogger("test", "silent");
const { getWebhookSecret, rotateWebhookSecret } = notifierPb.NotifierInternalServiceService;

interface Copy {
  name: string;
  server: GrpcServer;
  registry: Registry;
  /** Address clients dial: a proxy in front of the server. */
  address: string;
  /** Calls that wait until released, when `hold` is set. */
  hold: boolean;
  held: (() => void)[];
  /** Cuts every connection and stops listening. */
  die(): Promise<void>;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function proxy(target: number): Promise<{ port: number; die(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, "127.0.0.1");
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const gone = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", gone).on("close", gone);
    upstream.on("error", gone).on("close", gone);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const die = async () => {
    await new Promise<void>((r) => {
      server.close(() => r());
      for (const s of sockets) s.resetAndDestroy();
    });
  };
  cleanups.push(() => (server.listening ? die() : undefined));
  return { port: (server.address() as net.AddressInfo).port, die };
}

async function startCopy(
  name: string,
  extra: { maxConnectionAgeMs?: number; keepaliveTimeMs?: number; answerAfterMs?: number } = {},
): Promise<Copy> {
  const registry = new Registry();
  const server = createGrpcServer({ log, address: "127.0.0.1:0", internalToken: TOKEN, registry, ...extra });
  const copy: Copy = { name, server, registry, address: "", hold: false, held: [], die: async () => {} };
  const answer = async () => {
    if (copy.hold) await new Promise<void>((r) => copy.held.push(r));
    if (extra.answerAfterMs) await new Promise((r) => setTimeout(r, extra.answerAfterMs));
    return { secret: name, previousSecret: "" };
  };
  server.add(
    notifierPb.NotifierInternalServiceService,
    {
      getWebhookSecret: unary(log, "GetWebhookSecret", answer),
      rotateWebhookSecret: unary(log, "RotateWebhookSecret", answer),
      listDeliveries: unary(log, "ListDeliveries", async () => ({ delivery: [] })),
      redeliver: unary(log, "Redeliver", async () => ({})),
    },
    { internal: true },
  );
  const port = await server.start();
  server.setServing(true);
  cleanups.push(() => server.stop(0));
  const front = await proxy(port);
  copy.address = `127.0.0.1:${front.port}`;
  copy.die = front.die;
  return copy;
}

function client(addresses: string, keepaliveTimeMs?: number) {
  const c = keepaliveTimeMs
    ? new notifierPb.NotifierInternalServiceClient(grpcTarget(addresses), credentials.createInsecure(), {
        ...channelOptions,
        "grpc.keepalive_time_ms": keepaliveTimeMs,
      })
    : createClient(notifierPb.NotifierInternalServiceClient, addresses, { retry: [getWebhookSecret.path] });
  cleanups.push(() => c.close());
  const md = () => internalMetadata(TOKEN);
  return {
    get: () => callUnary(c.getWebhookSecret.bind(c), { project: "p" }, md(), 5_000).then((r) => r.secret),
    rotate: () => callUnary(c.rotateWebhookSecret.bind(c), { project: "p" }, md(), 5_000).then((r) => r.secret),
  };
}

async function handled(copy: Copy, method: string, code: string): Promise<number> {
  const metric = await copy.registry.getSingleMetric("grpc_server_handled_total")!.get();
  return metric.values
    .filter((v) => v.labels.grpc_method === method && v.labels.grpc_code === code)
    .reduce((n, v) => n + v.value, 0);
}

describe("grpcTarget", () => {
  it("turns address lists into grpc-js targets", () => {
    expect(grpcTarget("127.0.0.1:50051")).toBe("ipv4:127.0.0.1:50051");
    expect(grpcTarget("127.0.0.1:50051, 127.0.0.1:50061,")).toBe("ipv4:127.0.0.1:50051,127.0.0.1:50061");
    expect(grpcTarget("localhost:1,127.0.0.2:2")).toBe("ipv4:127.0.0.1:1,127.0.0.2:2");
    expect(grpcTarget("[::1]:1,[::1]:2")).toBe("ipv6:[::1]:1,[::1]:2");
    expect(grpcTarget("longhaul-scheduler:50051")).toBe("dns:///longhaul-scheduler:50051");
    expect(grpcTarget("dns://10.0.0.10/longhaul-scheduler.ns.svc:50051")).toBe(
      "dns://10.0.0.10/longhaul-scheduler.ns.svc:50051",
    );
  });

  it("refuses what grpc-js could not dial as a list", () => {
    expect(() => grpcTarget("")).toThrow(AddressListError);
    expect(() => grpcTarget("scheduler")).toThrow(/not host:port/);
    expect(() => grpcTarget("a.internal:1,b.internal:1")).toThrow(/IP literals or localhost/);
    expect(() => grpcTarget("127.0.0.1:1,[::1]:2")).toThrow(/mixed/);
    expect(() => grpcTarget("127.0.0.1:70000")).toThrow(/port/);
    expect(() => grpcTarget("ipv4:127.0.0.1:1,127.0.0.1:2,dns:///x:1")).toThrow(/stands alone/);
  });

  it("is checked with the rest of the config at start", () => {
    const env = { LONGHAUL_INTERNAL_TOKEN: TOKEN, SCHEDULER_ADDR: "127.0.0.1:1,127.0.0.1:2", INVOKER_ADDR: "a:1,b:1" };
    expect(() => parseEnv(commonEnvSchema, env)).toThrow(/INVOKER_ADDR: several addresses/);
    expect(parseEnv(commonEnvSchema, { ...env, INVOKER_ADDR: "invoker:50052" }).SCHEDULER_ADDR).toBe("127.0.0.1:1,127.0.0.1:2");
  });

  it("builds a service config grpc-js accepts, and refuses a bad method path", () => {
    expect(serviceConfig([getWebhookSecret.path])).toMatchObject({ loadBalancingConfig: [{ round_robin: {} }] });
    expect(() => serviceConfig(["GetWebhookSecret"])).toThrow(/method path/);
  });
});

describe("a client of several copies", () => {
  it("spreads calls over every copy, and keeps answering when one dies", async () => {
    const a = await startCopy("a");
    const b = await startCopy("b");
    const c = client(`${a.address},${b.address}`);

    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add(await c.get());
    expect([...seen].sort()).toEqual(["a", "b"]);
    expect(await handled(a, "GetWebhookSecret", "OK")).toBeGreaterThan(0);
    expect(await handled(b, "GetWebhookSecret", "OK")).toBeGreaterThan(0);

    // A call in flight on `a` when it dies is sent again, to `b`.
    a.hold = true;
    const inFlight: Promise<string>[] = [];
    while (a.held.length === 0) {
      inFlight.push(c.get());
      await new Promise((r) => setTimeout(r, 20));
    }
    await a.die();
    const answers = await Promise.all(inFlight);
    expect(answers.every((s) => s === "b")).toBe(true);

    // From then on every call answers, from `b`.
    for (let i = 0; i < 20; i++) expect(await c.get()).toBe("b");
  });

  it("does not send a method it was not told is safe twice", async () => {
    const a = await startCopy("a");
    const b = await startCopy("b");
    const c = client(`${a.address},${b.address}`);
    a.hold = true;
    const inFlight: Promise<string>[] = [];
    // One call at a time, each answered by `b` or held by `a` before the next:
    // exactly one is in flight on `a` when it dies (a fixed pause between calls
    // let a second one reach `a` on a busy machine).
    while (a.held.length === 0) {
      const call = c.rotate();
      inFlight.push(call);
      const answered = call.then(
        () => true,
        () => true,
      );
      while (!(await Promise.race([answered, new Promise<false>((r) => setTimeout(() => r(false), 10))])) && a.held.length === 0);
    }
    await a.die();
    const results = await Promise.allSettled(inFlight);
    const failed = results.filter((r) => r.status === "rejected");
    expect(failed).toHaveLength(1);
    const err = (failed[0] as PromiseRejectedResult).reason as LonghaulError;
    expect(err.code).toBe("unavailable");
    expect(await handled(b, "RotateWebhookSecret", "OK")).toBe(results.length - 1);
  });

  it("lets a call outlive its connection's max age", async () => {
    const a = await startCopy("a", { maxConnectionAgeMs: 200, answerAfterMs: 1_000 });
    const c = client(a.address);
    expect(await c.get()).toBe("a");
    // The connection was sent GOAWAY meanwhile; the next call opens a new one.
    expect(await c.get()).toBe("a");
  });

  it("lets a call outlive its connection's max age past the keepalive pings of both ends", async () => {
    // grpc-js pinged a connection it had closed gracefully after GOAWAY, took
    // the refused ping for a dead peer and cut every call still on it: a sync
    // pass-through (up to 12 h) ended 503 within a keepalive period of the
    // connection's max age (patches/@grpc+grpc-js*.patch).
    const a = await startCopy("a", { maxConnectionAgeMs: 200, keepaliveTimeMs: 250, answerAfterMs: 2_000 });
    const c = client(a.address, 250);
    expect(await c.get()).toBe("a");
    expect(await c.get()).toBe("a");
  });
});
