import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { createClient, createGrpcServer, internalMetadata, type GrpcServer } from "@longhaul/shared/grpc";
import { invokerPb } from "@longhaul/shared/proto";
import { createCapacity } from "../../core/capacity.js";
import { FakeMetrics } from "../../testing/fakes.js";
import { createUpstreamAgent } from "../http/upstream-client.js";
import { MAX_CHUNK_BYTES, createInvokeService } from "./invoke-service.js";
import type { SyncRunRecord } from "./scheduler-client.js";

const TOKEN = "test-internal-token-0123456789";
const log = createLogger("invoker-test", "silent");

type Route = (req: IncomingMessage, res: ServerResponse) => void;
const routes = new Map<string, Route>();
const closed: string[] = [];
let app: Server;
let appBase: string;

const agent = createUpstreamAgent();
const capacity = createCapacity(100);
const metrics = new FakeMetrics();
const records: SyncRunRecord[] = [];
let grpc: GrpcServer;
let client: invokerPb.InvokerServiceClient;

beforeAll(async () => {
  app = createServer((req, res) => {
    res.on("close", () => {
      if (!res.writableFinished) closed.push(req.url ?? "");
    });
    const route = routes.get(new URL(req.url ?? "/", "http://x").pathname);
    if (route) route(req, res);
    else res.writeHead(404).end();
  });
  app.requestTimeout = 0;
  await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
  appBase = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;

  grpc = createGrpcServer({ log, address: "127.0.0.1:0", internalToken: TOKEN });
  grpc.add(
    invokerPb.InvokerServiceService,
    createInvokeService({
      agent,
      capacity,
      metrics,
      log,
      recordSyncRun: async (r) => {
        records.push(r);
        return "sync-run-id";
      },
    }),
    { internal: true },
  );
  const port = await grpc.start();
  client = createClient(invokerPb.InvokerServiceClient, `127.0.0.1:${port}`);
});

afterAll(async () => {
  client.close();
  await grpc.stop(1_000);
  app.closeAllConnections();
  await new Promise((r) => app.close(r));
  await agent.close();
});

interface Collected {
  head?: invokerPb.InvokeResponseHead;
  chunks: Buffer[];
  error?: ServiceError;
}

/** Opens an Invoke stream; the caller writes; resolves with everything received. */
function open(metadata: Metadata = internalMetadata(TOKEN)) {
  const call = client.invoke(metadata, { deadline: Date.now() + 20_000 });
  const got: Collected = { chunks: [] };
  const done = new Promise<Collected>((resolve) => {
    call.on("data", (m: invokerPb.InvokeResponse) => {
      if (m.part?.$case === "head") got.head = m.part.value;
      if (m.part?.$case === "bodyChunk") got.chunks.push(m.part.value);
    });
    call.on("error", (err: ServiceError) => {
      got.error = err;
      resolve(got);
    });
    call.on("end", () => resolve(got));
  });
  return { call, done };
}

const head = (url: string, over: Partial<invokerPb.InvokeHead> = {}): invokerPb.InvokeRequest => ({
  part: {
    $case: "head",
    value: { url, method: "POST", headers: [], timeoutSeconds: 30, project: "dev", app: "echo", ...over },
  },
});
const chunk = (s: string | Buffer): invokerPb.InvokeRequest => ({ part: { $case: "bodyChunk", value: Buffer.from(s) } });
const end: invokerPb.InvokeRequest = { part: { $case: "end", value: true } };

describe("InvokerService/Invoke (real gRPC, real HTTP app)", () => {
  it("streams the request body to the app as it arrives and the answer back in ≤ 64 KiB chunks", async () => {
    const received: string[] = [];
    let gotFirst!: () => void;
    const firstArrived = new Promise<void>((r) => (gotFirst = r));
    const answer = Buffer.alloc(200 * 1024 + 3, "z");
    routes.set("/stream", (req, res) => {
      req.on("data", (c: Buffer) => {
        received.push(c.toString());
        gotFirst();
      });
      req.on("end", () => {
        res.writeHead(207, { "x-app": "yes", "content-type": "text/plain" });
        res.end(answer);
      });
    });
    const { call, done } = open();
    call.write(head(`${appBase}/stream?q=1`, { headers: [{ name: "content-type", value: "text/plain" }] }));
    call.write(chunk("part-one;"));
    // The app sees the first part before the second is even sent.
    await firstArrived;
    expect(received.join("")).toBe("part-one;");
    call.write(chunk("part-two"));
    call.write(end);
    call.end();
    const got = await done;
    expect(got.error).toBeUndefined();
    expect(got.head?.statusCode).toBe(207);
    expect(got.head?.headers).toContainEqual({ name: "x-app", value: "yes" });
    expect(received.join("")).toBe("part-one;part-two");
    expect(Buffer.concat(got.chunks).equals(answer)).toBe(true);
    expect(Math.max(...got.chunks.map((c) => c.byteLength))).toBeLessThanOrEqual(MAX_CHUNK_BYTES);
    await waitFor(() => records.some((r) => r.path === "/stream?q=1"));
    expect(records.find((r) => r.path === "/stream?q=1")).toMatchObject({
      project: "dev",
      app: "echo",
      method: "POST",
      statusCode: 207,
      errorCode: "",
    });
    expect(capacity.inUse()).toBe(0);
  });

  it("sends a GET without a body when `end` comes first", async () => {
    routes.set("/get", (req, res) => {
      res.end(JSON.stringify({ method: req.method, te: req.headers["transfer-encoding"] ?? null, cl: req.headers["content-length"] ?? null }));
    });
    const { call, done } = open();
    call.write(head(`${appBase}/get`, { method: "GET" }));
    call.write(end);
    call.end();
    const got = await done;
    expect(got.head?.statusCode).toBe(200);
    expect(JSON.parse(Buffer.concat(got.chunks).toString())).toEqual({ method: "GET", te: null, cl: null });
  });

  it("a client cancel closes the app's connection", async () => {
    let arrived!: () => void;
    const reached = new Promise<void>((r) => (arrived = r));
    routes.set("/hold", () => arrived());
    const { call, done } = open();
    call.write(head(`${appBase}/hold`, { method: "GET" }));
    call.write(end);
    await reached;
    const cancelledAt = Date.now();
    call.cancel();
    const got = await done;
    expect(got.error?.code).toBe(status.CANCELLED);
    await waitFor(() => closed.includes("/hold"), 1_000);
    expect(Date.now() - cancelledAt).toBeLessThan(1_000);
    await waitFor(() => records.some((r) => r.path === "/hold"));
    expect(records.find((r) => r.path === "/hold")?.errorCode).toBe("cancelled");
  });

  it("answers UNAVAILABLE naming the upstream error when the app refuses the connection", async () => {
    const port = await closedPort();
    const { call, done } = open();
    call.write(head(`http://127.0.0.1:${port}/x`, { method: "GET" }));
    call.write(end);
    call.end();
    const got = await done;
    expect(got.error?.code).toBe(status.UNAVAILABLE);
    expect(got.error?.details).toMatch(/ECONNREFUSED/);
  });

  it("answers DEADLINE_EXCEEDED when the app does not answer within timeout_seconds", async () => {
    routes.set("/never", () => undefined);
    const { call, done } = open();
    call.write(head(`${appBase}/never`, { method: "GET", timeoutSeconds: 1 }));
    call.write(end);
    call.end();
    const got = await done;
    expect(got.error?.code).toBe(status.DEADLINE_EXCEEDED);
    await waitFor(() => closed.includes("/never"), 1_000);
  });

  it("refuses a stream that does not start with `head`, and calls without the internal token", async () => {
    const a = open();
    a.call.write(chunk("x"));
    a.call.end();
    expect((await a.done).error?.code).toBe(status.INVALID_ARGUMENT);

    const b = open(new Metadata());
    b.call.write(head(`${appBase}/get`, { method: "GET" }));
    b.call.end();
    expect((await b.done).error?.code).toBe(status.UNAUTHENTICATED);
  });
});

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitFor(cond: () => boolean, ms = 2_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
