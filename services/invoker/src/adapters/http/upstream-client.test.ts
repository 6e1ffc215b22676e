import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { createCapacity } from "../../core/capacity.js";
import { systemClock } from "../../core/ports.js";
import { RunInvoker } from "../../core/run-invoker.js";
import { FakeMetrics, FakeScheduler, claimedRun } from "../../testing/fakes.js";
import { createUpstreamAgent, createUpstreamClient, upstreamAgentOptions } from "./upstream-client.js";

const execFileAsync = promisify(execFile);

type Route = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

/** A real app on 127.0.0.1, an ephemeral port; each test sets its own route. */
let app: Server;
let base: string;
const routes = new Map<string, Route>();
const closedRequests: string[] = [];

beforeAll(async () => {
  app = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const route = routes.get(new URL(req.url ?? "/", "http://x").pathname);
      if (!route) {
        res.writeHead(404).end();
        return;
      }
      route(req, res, Buffer.concat(chunks));
    });
    // 'close' on the response before it finished: the caller went away.
    res.on("close", () => {
      if (!res.writableFinished) closedRequests.push(req.url ?? "");
    });
  });
  // Node's own 300 s requestTimeout is not what we test; keep the app patient.
  app.requestTimeout = 0;
  await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
});

afterAll(async () => {
  app.closeAllConnections();
  await new Promise((r) => app.close(r));
});

const agent = createUpstreamAgent({ keepAliveInitialDelayMs: 1_000 });
afterAll(() => agent.close());
const client = createUpstreamClient({ agent, maxResponseBytes: 1024 * 1024 });
const signal = () => new AbortController().signal;

describe("upstream client (real HTTP app)", () => {
  it("passes method, path, query, headers and body, and returns the app's answer", async () => {
    routes.set("/echo", (req, res, body) => {
      res.setHeader("set-cookie", ["a=1", "b=2"]);
      res.setHeader("content-type", "application/json");
      res.writeHead(201);
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, raw: req.rawHeaders, body: body.toString() }));
    });
    const result = await client.call({
      url: `${base}/echo?x=1&y=two`,
      method: "put",
      headers: [
        { name: "X-Custom", value: "a" },
        { name: "X-Custom", value: "b" },
        { name: "Idempotency-Key", value: "run-1" },
      ],
      body: Buffer.from("hello app"),
      signal: signal(),
    });
    expect(result.kind).toBe("response");
    if (result.kind !== "response") return;
    expect(result.statusCode).toBe(201);
    expect(result.bodyTruncated).toBe(false);
    expect(result.headers.filter((h) => h.name === "set-cookie").map((h) => h.value)).toEqual(["a=1", "b=2"]);
    const seen = JSON.parse(Buffer.from(result.body).toString()) as {
      method: string;
      url: string;
      headers: Record<string, string>;
      raw: string[];
      body: string;
    };
    expect(seen.method).toBe("PUT");
    expect(seen.url).toBe("/echo?x=1&y=two");
    expect(seen.body).toBe("hello app");
    expect(seen.headers["idempotency-key"]).toBe("run-1");
    expect(seen.headers["content-length"]).toBe("9");
    const custom = seen.raw.filter((_, i) => i % 2 === 1 && seen.raw[i - 1] === "X-Custom");
    expect(custom).toEqual(["a", "b"]);
  });

  it("aborting the signal closes the app's connection at once", async () => {
    let arrived!: () => void;
    const reached = new Promise<void>((r) => (arrived = r));
    routes.set("/hold", () => arrived()); // never answers
    const controller = new AbortController();
    const pending = client.call({ url: `${base}/hold`, method: "GET", headers: [], body: new Uint8Array(0), signal: controller.signal });
    await reached;
    const abortedAt = Date.now();
    controller.abort("cancelled");
    expect(await pending).toEqual({ kind: "aborted" });
    await waitFor(() => closedRequests.includes("/hold"), 1_000);
    expect(Date.now() - abortedAt).toBeLessThan(1_000);
  });

  it("keeps the first maxResponseBytes, reads the rest and marks the body truncated", async () => {
    const size = 3 * 1024 * 1024 + 17;
    let finished = false;
    routes.set("/big", (_req, res) => {
      res.on("finish", () => (finished = true));
      res.writeHead(200, { "content-type": "application/octet-stream" });
      const block = Buffer.alloc(64 * 1024, 7);
      let sent = 0;
      const pump = () => {
        while (sent < size) {
          const n = Math.min(block.length, size - sent);
          sent += n;
          if (!res.write(block.subarray(0, n))) return res.once("drain", pump);
        }
        res.end();
      };
      pump();
    });
    const result = await client.call({ url: `${base}/big`, method: "GET", headers: [], body: new Uint8Array(0), signal: signal() });
    expect(result.kind).toBe("response");
    if (result.kind !== "response") return;
    expect(result.body.byteLength).toBe(1024 * 1024);
    expect(result.bodyTruncated).toBe(true);
    expect(finished).toBe(true); // the app's whole answer was read, not cut
  });

  it("reports a connect error on a closed port", async () => {
    const port = await closedPort();
    const result = await client.call({ url: `http://127.0.0.1:${port}/`, method: "GET", headers: [], body: new Uint8Array(0), signal: signal() });
    expect(result.kind).toBe("connect_error");
    if (result.kind === "connect_error") expect(result.message).toMatch(/ECONNREFUSED/);
  });

  it("reports a connection reset after the request was read as interrupted, not as a connect error", async () => {
    let seen = 0;
    routes.set("/reset", (req) => {
      seen++;
      req.socket.destroy();
    });
    const result = await client.call({ url: `${base}/reset`, method: "POST", headers: [], body: new Uint8Array([1, 2, 3]), signal: signal() });
    expect(result.kind).toBe("interrupted");
    expect(seen).toBe(1); // the app did see it: exactly why it must not be sent again
  });

  it("reports a connection cut in the middle of the answer as interrupted", async () => {
    routes.set("/half", (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain", "content-length": "1000" });
      res.write("only part of it");
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const result = await client.call({ url: `${base}/half`, method: "GET", headers: [], body: new Uint8Array(0), signal: signal() });
    expect(result.kind).toBe("interrupted");
  });

  it("reports a name that does not resolve as a connect error", async () => {
    const result = await client.call({ url: "http://no-such-host.invalid/", method: "GET", headers: [], body: new Uint8Array(0), signal: signal() });
    expect(result.kind).toBe("connect_error");
  });

  it("builds the Agent with undici's 300 s timeouts off and TCP keep-alive on", () => {
    const o = upstreamAgentOptions({ keepAliveInitialDelayMs: 1_000 });
    expect(o.headersTimeout).toBe(0);
    expect(o.bodyTimeout).toBe(0);
    expect(o.connect).toMatchObject({ keepAlive: true, keepAliveInitialDelay: 1_000 });
    expect(upstreamAgentOptions().connect).toMatchObject({ keepAlive: true, keepAliveInitialDelay: 30_000 });
  });

  it("holds a 3 s call with a 1 s keep-alive delay to its answer", async () => {
    routes.set("/slow", (_req, res) => {
      setTimeout(() => res.writeHead(200).end("slow done"), 3_000);
    });
    const started = Date.now();
    const pending = client.call({ url: `${base}/slow`, method: "GET", headers: [], body: new Uint8Array(0), signal: signal() });
    // The kernel shows the keep-alive timer on the caller's socket (ss -o: "timer:(keepalive,...)").
    await new Promise((r) => setTimeout(r, 1_500));
    const port = new URL(base).port;
    const { stdout } = await execFileAsync("ss", ["-tnoH", "state", "established", `( dport = :${port} )`]);
    expect(stdout).toMatch(/timer:\(keepalive/);
    const result = await pending;
    expect(result.kind).toBe("response");
    if (result.kind === "response") expect(Buffer.from(result.body).toString()).toBe("slow done");
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_900);
  });

  it("ends a call longer than the run's deadline as a timeout (core + real HTTP)", async () => {
    routes.set("/forever", () => undefined);
    const scheduler = new FakeScheduler();
    scheduler.claimImpl = async (d) =>
      claimedRun(d, { url: `${base}/forever`, method: "GET", deadline: new Date(Date.now() + 300) }, Date.now());
    const invoker = new RunInvoker({
      invokerId: "inv-http",
      scheduler,
      upstream: client,
      capacity: createCapacity(10),
      clock: systemClock,
      metrics: new FakeMetrics(),
      log: createLogger("invoker-test", "silent"),
    });
    const decision = await invoker.claim({ runId: "slow-run", attempt: 1 });
    if (decision.kind !== "claimed") throw new Error("not claimed");
    decision.start();
    await waitFor(() => scheduler.completions.length === 1, 3_000);
    expect(scheduler.completions[0]!.outcome).toMatchObject({ statusCode: 0, errorCode: "timeout" });
    await waitFor(() => closedRequests.includes("/forever"), 1_000);
  });
});

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
