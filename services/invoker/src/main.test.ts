/**
 * The invoker as a process (dist/main.js, built by `npm test`): ready log,
 * health, metrics, a run end to end, and SIGTERM drain handing back a held
 * call. Real NATS, a real app, the in-memory scheduler over gRPC.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { makeGenericClientConstructor, credentials, type ServiceError } from "@grpc/grpc-js";
import { jetstream } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { service as healthService } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { internalMetadata } from "@longhaul/shared/grpc";
import { connectNats, natsNames, type NatsConnection } from "@longhaul/shared/nats";
import { createTestNats } from "../../../tests/helpers/isolation.js";
import { FakeSchedulerServer } from "./testing/fake-scheduler-server.js";

const TOKEN = "test-internal-token-0123456789";
const MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));

let app: Server;
let appBase: string;
const holding = new Map<string, ServerResponse>();
const closed: string[] = [];
const appHeaders = new Map<string, Record<string, unknown>>();
const scheduler = new FakeSchedulerServer(TOKEN);
let testNats: Awaited<ReturnType<typeof createTestNats>>;
let nc: NatsConnection;
let proc: ChildProcess;
const lines: Array<Record<string, unknown>> = [];
let exited: Promise<number | null>;

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first (npm test does)`);
  app = createServer((req, res) => {
    res.on("close", () => {
      if (!res.writableFinished) closed.push(req.url ?? "");
    });
    appHeaders.set(req.url ?? "", req.headers);
    req.resume();
    if (req.url?.startsWith("/hold/")) holding.set(req.url.slice(6), res);
    else res.end("fine");
  });
  await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
  appBase = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
  testNats = await createTestNats();
  nc = await connectNats(testNats.url, "invoker-main-test", createLogger("t", "silent"));
  const schedulerAddr = await scheduler.start();

  proc = spawn(process.execPath, ["--import", "@longhaul/shared/otel-register", MAIN], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    env: {
      ...process.env,
      LONGHAUL_INTERNAL_TOKEN: TOKEN,
      SCHEDULER_ADDR: schedulerAddr,
      NATS_URL: testNats.url,
      LONGHAUL_NATS_PREFIX: testNats.prefix,
      INVOKER_GRPC_HOST: "127.0.0.1",
      INVOKER_GRPC_PORT: "0",
      INVOKER_METRICS_HOST: "127.0.0.1",
      INVOKER_METRICS_PORT: "0",
      INVOKER_ID: "inv-main-test",
      INVOKER_DRAIN_SECONDS: "1",
      INVOKER_HEARTBEAT_MS: "200",
      // The test's app listens on loopback, outside the default egress networks (as npm start, it allows it).
      LONGHAUL_APP_ALLOWED_NETWORKS: "127.0.0.0/8",
      LOG_LEVEL: "debug",
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, so nothing outlives the test
  });
  exited = new Promise((resolve) => proc.once("exit", (code) => resolve(code)));
  let buf = "";
  proc.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ raw: line });
      }
    }
  });
  let stderr = "";
  proc.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  await waitFor(() => lines.some((l) => l.msg === "ready"), 60_000).catch((err: unknown) => {
    throw new Error(`invoker not ready: ${String(err)}\n${stderr}\n${JSON.stringify(lines)}`);
  });
});

afterAll(async () => {
  if (proc.exitCode === null && proc.pid) process.kill(-proc.pid, "SIGKILL");
  await nc?.close();
  await testNats?.cleanup();
  await scheduler.stop();
  app.closeAllConnections();
  await new Promise((r) => app.close(r));
});

const ready = () => lines.find((l) => l.msg === "ready") as { grpc_port: number; metrics_port: number };

function newRun(path: string, traceparent?: string): string {
  const runId = `main-${Math.random().toString(16).slice(2)}`;
  scheduler.add({ runId, attempt: 1, url: `${appBase}${path.replace("<id>", runId)}`, traceparent });
  return runId;
}

async function publish(runId: string, traceparent?: string): Promise<void> {
  const names = natsNames(testNats.prefix);
  const h = headers();
  if (traceparent) h.set("traceparent", traceparent);
  await jetstream(nc).publish(names.dispatch("dev", "echo"), JSON.stringify({ run_id: runId, attempt: 1 }), {
    msgID: `${runId}:1`,
    headers: h,
  });
}

const traceIdOf = (traceparent: unknown) => String(traceparent ?? "").split("-")[1];

describe("invoker process", () => {
  it("logs ready and serves health (SERVING) with the internal service registered", async () => {
    const Health = makeGenericClientConstructor(healthService, "grpc.health.v1.Health");
    const client = new Health(`127.0.0.1:${ready().grpc_port}`, credentials.createInsecure());
    const check = (svc: string) =>
      new Promise<string>((resolve, reject) =>
        (client as unknown as { check: Function }).check(
          { service: svc },
          internalMetadata(TOKEN),
          { deadline: Date.now() + 5_000 },
          (err: ServiceError | null, res: { status: string }) => (err ? reject(err) : resolve(res.status)),
        ),
      );
    expect(await check("")).toBe("SERVING");
    expect(await check("longhaul.internal.v1.InvokerService")).toBe("SERVING");
    client.close();
  });

  it("runs a dispatch end to end and counts it in /metrics", async () => {
    const runId = newRun("/ok/<id>");
    await publish(runId);
    await waitFor(() => scheduler.completions.some((c) => c.runId === runId));
    expect(scheduler.completions.find((c) => c.runId === runId)).toMatchObject({ statusCode: 200, invokerId: "inv-main-test" });
    await waitFor(() => lines.some((l) => l.run_id === runId && l.msg === "outcome recorded"));
    const metrics = await (await fetch(`http://127.0.0.1:${ready().metrics_port}/metrics`)).text();
    expect(metrics).toMatch(/longhaul_invoker_calls_total\{[^}]*outcome="succeeded"[^}]*\} 1/);
    expect(metrics).toMatch(/longhaul_invoker_calls_in_flight\{[^}]*mode="async"[^}]*\} 0/);
    expect(metrics).toContain("longhaul_invoker_call_duration_seconds_bucket");
  });

  it("continues the dispatch's trace on ClaimRun and the submit's trace on the app call", async () => {
    const dispatchTrace = "00-11111111111111111111111111111111-2222222222222222-01";
    const submitTrace = "00-33333333333333333333333333333333-4444444444444444-01";
    const runId = newRun("/ok/<id>", submitTrace);
    await publish(runId, dispatchTrace);
    await waitFor(() => scheduler.completions.some((c) => c.runId === runId));
    expect(traceIdOf(scheduler.claims.find((c) => c.runId === runId)?.traceparent)).toBe("11111111111111111111111111111111");
    const sent = appHeaders.get(`/ok/${runId}`)!;
    expect(String(sent.traceparent).split(",")).toHaveLength(1); // exactly one, injected by the undici instrumentation
    expect(traceIdOf(sent.traceparent)).toBe("33333333333333333333333333333333");
    await waitFor(() => lines.some((l) => l.run_id === runId && l.msg === "outcome recorded"));
    expect(lines.find((l) => l.run_id === runId && l.msg === "calling app")?.trace_id).toBe("33333333333333333333333333333333");
  });

  it("on SIGTERM drains: waits INVOKER_DRAIN_SECONDS, releases the held call, exits 0", async () => {
    const runId = newRun("/hold/<id>");
    await publish(runId);
    await waitFor(() => holding.has(runId));
    const at = Date.now();
    proc.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(Date.now() - at).toBeGreaterThanOrEqual(900);
    expect(scheduler.releases).toContainEqual(expect.objectContaining({ runId, reason: "invoker_draining" }));
    expect(closed).toContain(`/hold/${runId}`);
    expect(lines.some((l) => l.msg === "stopped")).toBe(true);
  });
});

async function waitFor(cond: () => boolean, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}
