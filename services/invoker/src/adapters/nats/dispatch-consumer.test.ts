import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { connectNats, natsNames, traceHeaders, type NatsConnection } from "@longhaul/shared/nats";
import { createTestNats } from "../../../../../tests/helpers/isolation.js";
import { createCapacity, type Capacity } from "../../core/capacity.js";
import { HeartbeatLoop } from "../../core/heartbeat-loop.js";
import { systemClock } from "../../core/ports.js";
import { RunInvoker } from "../../core/run-invoker.js";
import { FakeSchedulerServer } from "../../testing/fake-scheduler-server.js";
import { FakeMetrics } from "../../testing/fakes.js";
import { createSchedulerClient, type SchedulerClient } from "../grpc/scheduler-client.js";
import { createUpstreamAgent, createUpstreamClient } from "../http/upstream-client.js";
import { subscribeCancels } from "./cancel-subscriber.js";
import { startDispatchConsumer, type DispatchConsumer } from "./dispatch-consumer.js";

const TOKEN = "test-internal-token-0123456789";
const log = createLogger("invoker-test", "silent");

/** A real app: `/ok` answers at once, `/hold/<id>` waits until the test releases it. */
let app: Server;
let appBase: string;
const seen: Array<{ url: string; headers: IncomingMessage["headers"] }> = [];
const holding = new Map<string, ServerResponse>();
const closed: string[] = [];

let testNats: Awaited<ReturnType<typeof createTestNats>>;
let nc: NatsConnection;
let names: ReturnType<typeof natsNames>;
const scheduler = new FakeSchedulerServer(TOKEN);
let schedulerClient: SchedulerClient;
const agent = createUpstreamAgent();

beforeAll(async () => {
  app = createServer((req, res) => {
    seen.push({ url: req.url ?? "", headers: req.headers });
    res.on("close", () => {
      if (!res.writableFinished) closed.push(req.url ?? "");
    });
    req.resume();
    if (req.url?.startsWith("/hold/")) holding.set(req.url.slice("/hold/".length), res);
    else res.writeHead(200, { "content-type": "text/plain" }).end(`ok ${req.url}`);
  });
  app.requestTimeout = 0;
  await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
  appBase = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;

  testNats = await createTestNats();
  names = natsNames(testNats.prefix);
  nc = await connectNats(testNats.url, "invoker-test", log);
  schedulerClient = createSchedulerClient(await scheduler.start(), TOKEN);
});

afterAll(async () => {
  schedulerClient.close();
  await scheduler.stop();
  await nc.close();
  await testNats.cleanup();
  app.closeAllConnections();
  await new Promise((r) => app.close(r));
  await agent.close();
});

/** One invoker's worth of wiring, as main.ts builds it, against the real NATS and the fake scheduler. */
interface Wired {
  invoker: RunInvoker;
  capacity: Capacity;
  consumer: DispatchConsumer;
  heartbeats: HeartbeatLoop;
  cancels: { close(): Promise<void> };
}
let wired: Wired | undefined;

async function wire(maxInFlight = 100): Promise<Wired> {
  const capacity = createCapacity(maxInFlight);
  const invoker = new RunInvoker({
    invokerId: "inv-test",
    scheduler: schedulerClient,
    upstream: createUpstreamClient({ agent, maxResponseBytes: 1024 * 1024 }),
    capacity,
    clock: systemClock,
    metrics: new FakeMetrics(),
    log,
  });
  const heartbeats = new HeartbeatLoop({
    invokerId: "inv-test",
    scheduler: schedulerClient,
    clock: systemClock,
    log,
    held: () => invoker.heldRuns(),
    onLost: (lost) => invoker.abortLost(lost),
    claimLeaseSeconds: () => invoker.leaseSeconds(),
    overrideMs: 200,
  });
  heartbeats.start();
  const cancels = subscribeCancels(nc, names, log, (id) => invoker.cancel(id));
  const consumer = await startDispatchConsumer({ nc, names, capacity, log, claim: (d) => invoker.claim(d), expiresMs: 1_000 });
  wired = { invoker, capacity, consumer, heartbeats, cancels };
  return wired;
}

afterEach(async () => {
  if (!wired) return;
  await wired.consumer.stop();
  await wired.invoker.drain(0);
  await wired.heartbeats.stop();
  await wired.cancels.close();
  wired = undefined;
});

let seq = 0;
function newRun(path: string, over: { timeoutMs?: number; register?: boolean } = {}): string {
  const runId = `run-${++seq}-${Date.now()}`;
  if (over.register !== false) {
    scheduler.add({ runId, attempt: 1, url: `${appBase}${path.replace("<id>", runId)}`, timeoutMs: over.timeoutMs });
  }
  return runId;
}

async function publish(runId: string, attempt = 1): Promise<void> {
  const js = jetstream(nc);
  await js.publish(names.dispatch("dev", "echo"), JSON.stringify({ run_id: runId, attempt }), {
    msgID: `${runId}:${attempt}`,
    headers: traceHeaders(),
  });
}

async function streamMessages(): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(names.dispatchStream)).state.messages;
}

describe("dispatch consumer (real NATS, fake scheduler over gRPC, real app)", () => {
  it("claims a dispatch, acks it, calls the app and reports the answer", async () => {
    await wire();
    const runId = newRun("/ok?r=<id>");
    await publish(runId);
    await waitFor(() => scheduler.completions.some((c) => c.runId === runId));
    const c = scheduler.completions.find((x) => x.runId === runId)!;
    expect(c).toMatchObject({ attempt: 1, invokerId: "inv-test", statusCode: 200, errorCode: "" });
    expect(Buffer.from(c.body).toString()).toBe(`ok /ok?r=${runId}`);
    const call = seen.find((s) => s.url === `/ok?r=${runId}`)!;
    expect(call.headers["idempotency-key"]).toBe(runId);
    expect(call.headers["x-longhaul-run-id"]).toBe(runId);
    expect(call.headers["x-longhaul-attempt"]).toBe("1");
    await waitFor(async () => (await streamMessages()) === 0);
  });

  it("acks and drops a dispatch the scheduler refuses", async () => {
    await wire();
    const runId = newRun("/ok?r=<id>", { register: false });
    await publish(runId);
    await waitFor(() => scheduler.claims.some((c) => c.runId === runId));
    await waitFor(async () => (await streamMessages()) === 0);
    await sleep(300);
    expect(scheduler.claims.filter((c) => c.runId === runId)).toHaveLength(1);
    expect(seen.some((s) => s.url.includes(runId))).toBe(false);
  });

  it("naks when the scheduler is unavailable, and the redelivery is claimed ~2 s later", async () => {
    await wire();
    const runId = newRun("/ok?r=<id>");
    scheduler.claimUnavailable = 1;
    await publish(runId);
    await waitFor(() => scheduler.completions.some((c) => c.runId === runId), 8_000);
    const claims = scheduler.claims.filter((c) => c.runId === runId);
    expect(claims).toHaveLength(2);
    expect(claims[1]!.at - claims[0]!.at).toBeGreaterThanOrEqual(1_800);
  });

  it("pulls no more than its free slots; the rest wait in the stream", async () => {
    const w = await wire(2);
    const ids = [1, 2, 3, 4, 5].map(() => newRun("/hold/<id>"));
    for (const id of ids) await publish(id);
    await waitFor(() => holding.size >= 2);
    await sleep(1_500); // longer than a pull's expiry: nothing more may be taken
    expect(w.capacity.inUse()).toBe(2);
    expect(ids.filter((id) => holding.has(id))).toHaveLength(2);
    expect(await streamMessages()).toBe(3);
    // Answer the held calls one by one; each freed slot pulls the next dispatch.
    for (let answered = 0; answered < 5; answered++) {
      await waitFor(() => ids.some((id) => holding.has(id)));
      const id = ids.find((x) => holding.has(x))!;
      holding.get(id)!.end("done");
      holding.delete(id);
      await waitFor(() => scheduler.completions.some((c) => c.runId === id));
    }
    expect(ids.every((id) => scheduler.completions.some((c) => c.runId === id))).toBe(true);
    expect(await streamMessages()).toBe(0);
  });

  it("a cancel message closes the app's connection and completes nothing", async () => {
    await wire();
    const runId = newRun("/hold/<id>");
    await publish(runId);
    await waitFor(() => holding.has(runId));
    const at = Date.now();
    nc.publish(names.cancel, JSON.stringify({ run_id: runId }));
    await waitFor(() => closed.includes(`/hold/${runId}`), 1_000);
    expect(Date.now() - at).toBeLessThan(1_000);
    holding.delete(runId);
    await sleep(300);
    expect(scheduler.completions.some((c) => c.runId === runId)).toBe(false);
  });

  it("heartbeats the held runs and aborts those the scheduler names lost", async () => {
    const w = await wire();
    const runId = newRun("/hold/<id>");
    await publish(runId);
    await waitFor(() => holding.has(runId));
    await waitFor(() => scheduler.heartbeats.some((h) => h.runs.some((r) => r.runId === runId)));
    expect(w.invoker.heldRuns()).toEqual([{ runId, attempt: 1 }]);
    scheduler.lost.add(runId);
    await waitFor(() => closed.includes(`/hold/${runId}`), 2_000);
    holding.delete(runId);
    await sleep(300);
    expect(scheduler.completions.some((c) => c.runId === runId)).toBe(false);
  });

  it("reports a timeout when the run's deadline passes", async () => {
    await wire();
    const runId = newRun("/hold/<id>", { timeoutMs: 500 });
    await publish(runId);
    await waitFor(() => scheduler.completions.some((c) => c.runId === runId), 3_000);
    expect(scheduler.completions.find((c) => c.runId === runId)).toMatchObject({ statusCode: 0, errorCode: "timeout" });
    await waitFor(() => closed.includes(`/hold/${runId}`), 1_000);
    holding.delete(runId);
  });

  it("drain: stops pulling, waits, then releases the calls still held", async () => {
    const w = await wire();
    const runId = newRun("/hold/<id>");
    await publish(runId);
    await waitFor(() => holding.has(runId));
    await w.consumer.stop();
    const later = newRun("/ok?r=<id>");
    await publish(later);
    const started = Date.now();
    await w.invoker.drain(500);
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(scheduler.releases).toContainEqual(
      expect.objectContaining({ runId, attempt: 1, invokerId: "inv-test", reason: "invoker_draining" }),
    );
    await waitFor(() => closed.includes(`/hold/${runId}`), 1_000);
    holding.delete(runId);
    // The stopped consumer took nothing more: the later dispatch waits for another invoker.
    expect(scheduler.claims.some((c) => c.runId === later)).toBe(false);
    expect(await streamMessages()).toBe(1);
    // A fresh invoker takes the waiting dispatch.
    await w.heartbeats.stop();
    await w.cancels.close();
    await wire();
    await waitFor(() => scheduler.completions.some((c) => c.runId === later));
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await sleep(20);
  }
}
