import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { makeGenericClientConstructor, type Client } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { Webhook } from "standardwebhooks";
import { LonghaulError } from "@longhaul/shared/errors";
import { createLogger } from "@longhaul/shared/logger";
import { callUnary, createClient, createGrpcServer, internalMetadata, unary, type GrpcServer } from "@longhaul/shared/grpc";
import { notifierPb, runsPb, schedulerPb } from "@longhaul/shared/proto";
import { encodeRunFinished, natsNames } from "@longhaul/shared/nats";
import { resultUrlKey, verifyResultUrl } from "@longhaul/shared/result-url";
import { createTestDatabase, createTestNats } from "../../../tests/helpers/isolation.js";
import { loadConfig } from "./config.js";
import { startNotifier, type RunningNotifier } from "./service.js";
import { eventually, startReceiver, type Receiver } from "./testing/receiver.js";

// The whole notifier in process, on real Postgres and NATS, POSTing to real
// receivers, with a real grpc-js server answering from memory in place of the
// scheduler (the real scheduler is covered end to end by tests/).

const log = createLogger("notifier-test", "silent");
const token = "notifier-service-test-token";
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let nats: Awaited<ReturnType<typeof createTestNats>>;
let scheduler: GrpcServer;
let notifier: RunningNotifier;
let nc: NatsConnection;
let client: notifierPb.NotifierInternalServiceClient;
let receiver: Receiver;

/** The scheduler's runs, in memory, and every UpdateWebhookState it got. */
const runs = new Map<string, schedulerPb.GetDeliveryInputResponse>();
const told: Array<{ runId: string; state: runsPb.WebhookState }> = [];
/** Runs the notifier asked GetDeliveryInput about. */
const asked: string[] = [];
const lastTold = (runId: string) => told.filter((t) => t.runId === runId).at(-1)?.state;

beforeAll(async () => {
  database = await createTestDatabase();
  nats = await createTestNats();
  scheduler = createGrpcServer({ log, address: "127.0.0.1:0", internalToken: token });
  scheduler.add(
    schedulerPb.SchedulerInternalServiceService,
    {
      getDeliveryInput: unary(log, "GetDeliveryInput", async (req: schedulerPb.GetDeliveryInputRequest) => {
        asked.push(req.runId);
        const run = runs.get(req.runId);
        if (!run) throw new LonghaulError("not_found", "no such run");
        return run;
      }),
      updateWebhookState: unary(log, "UpdateWebhookState", async (req: schedulerPb.UpdateWebhookStateRequest) => {
        told.push({ runId: req.runId, state: req.state });
        return {};
      }),
    },
    { internal: true },
  );
  const schedulerPort = await scheduler.start();

  receiver = await startReceiver((req, res) => {
    const mode = new URL(req.url ?? "/", "http://x").searchParams.get("mode");
    if (mode === "flaky" && receiver.received.filter((r) => r.url === req.url).length === 1) return res.writeHead(503).end();
    res.end("ok");
  });

  const config = loadConfig({
    DATABASE_URL: database.url,
    NATS_URL: nats.url,
    LONGHAUL_MIGRATE_AT_START: "true",
    LONGHAUL_NATS_PREFIX: nats.prefix,
    LONGHAUL_INTERNAL_TOKEN: token,
    LOG_LEVEL: "silent",
    SCHEDULER_ADDR: `127.0.0.1:${schedulerPort}`,
    NOTIFIER_GRPC_HOST: "127.0.0.1",
    NOTIFIER_GRPC_PORT: "0",
    NOTIFIER_METRICS_HOST: "127.0.0.1",
    NOTIFIER_METRICS_PORT: "0",
    LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true",
    NOTIFIER_RETRY_SCHEDULE: "0,0.2,0.2",
    NOTIFIER_POLL_MS: "50",
    NOTIFIER_MAX_INLINE_BYTES: "1024",
    LONGHAUL_PUBLIC_URL: "https://longhaul.example",
  });
  notifier = await startNotifier(config, log);
  client = createClient(notifierPb.NotifierInternalServiceClient, `127.0.0.1:${notifier.grpcPort}`);
  nc = await connect({ servers: nats.url });
});

afterAll(async () => {
  client?.close();
  await nc?.close();
  await notifier?.stop();
  await scheduler?.stop(1_000);
  await receiver?.close();
  await nats?.cleanup();
  await database?.drop();
});

function addRun(over: Partial<schedulerPb.GetDeliveryInputResponse> = {}): schedulerPb.GetDeliveryInputResponse {
  const runId = randomUUID();
  const run: schedulerPb.GetDeliveryInputResponse = {
    runId,
    project: "dev",
    app: "echo",
    webhookUrl: `${receiver.url}/hook/${runId}`,
    status: runsPb.RunStatus.RUN_STATUS_SUCCEEDED,
    statusCode: 201,
    contentType: "application/json",
    body: Buffer.from(JSON.stringify({ created: runId })),
    errorCode: "",
    errorMessage: "",
    finishedAt: new Date(),
    traceparent: TRACEPARENT,
    bodyTruncated: false,
    labels: {},
    createdAt: new Date(),
    startedAt: new Date(),
    requestBody: Buffer.alloc(0),
    bodyGone: false,
    ...over,
  };
  runs.set(runId, run);
  return run;
}

async function publishFinished(run: { runId: string; project: string }): Promise<void> {
  const names = natsNames(nats.prefix);
  const payload = encodeRunFinished({ runId: run.runId, project: run.project, app: "echo", status: "succeeded", republished: false });
  await jetstream(nc).publish(names.finished(run.project), payload, { msgID: `${run.runId}:finished` });
}

const md = () => internalMetadata(token);
const hits = (runId: string) => receiver.received.filter((r) => r.url.includes(runId));

describe("the notifier service", () => {
  // As this release writes it (RunFinishedEvent, protobuf), and as an older
  // scheduler wrote it (JSON): during a rolling update both arrive.
  it.each(["protobuf", "legacy JSON"] as const)("delivers from what run.finished carries (%s), without asking the scheduler", async (encoding) => {
    const run = addRun();
    runs.delete(run.runId); // the scheduler could not answer for it: the event must be enough
    const names = natsNames(nats.prefix);
    const body = Buffer.from('{"inline":true}');
    const payload =
      encoding === "protobuf"
        ? encodeRunFinished({
            runId: run.runId,
            project: "dev",
            app: "echo",
            status: "succeeded",
            republished: false,
            delivery: {
              webhookUrl: run.webhookUrl,
              statusCode: 201,
              contentType: "application/json",
              body,
              bodyTruncated: false,
              errorCode: "",
              errorMessage: "",
              traceparent: TRACEPARENT,
            },
          })
        : JSON.stringify({
            run_id: run.runId,
            project: "dev",
            app: "echo",
            status: "succeeded",
            delivery: {
              webhook_url: run.webhookUrl,
              status_code: 201,
              content_type: "application/json",
              body_base64: body.toString("base64"),
              body_truncated: false,
              error_code: "",
              error_message: "",
              traceparent: TRACEPARENT,
            },
          });
    await jetstream(nc).publish(names.finished("dev"), payload, { msgID: `${run.runId}:finished` });
    await eventually(() => lastTold(run.runId) === runsPb.WebhookState.WEBHOOK_STATE_DELIVERED);
    const [got] = hits(run.runId);
    expect(got!.headers).toMatchObject({ "x-longhaul-run-id": run.runId, "x-longhaul-status-code": "201" });
    expect(got!.body.toString()).toBe('{"inline":true}');
    expect(asked).not.toContain(run.runId);
  });

  it("turns a run.finished event into a signed webhook and reports it delivered, once", async () => {
    const run = addRun();
    await publishFinished(run);
    await eventually(() => lastTold(run.runId) === runsPb.WebhookState.WEBHOOK_STATE_DELIVERED);
    // The scheduler set pending itself when the run ended; the notifier tells it the end, once.
    expect(told.filter((t) => t.runId === run.runId).map((t) => t.state)).toEqual([runsPb.WebhookState.WEBHOOK_STATE_DELIVERED]);
    const [got] = hits(run.runId);
    expect(got!.headers).toMatchObject({
      "content-type": "application/json",
      "webhook-id": `msg_${run.runId}`,
      "x-longhaul-run-id": run.runId,
      "x-longhaul-run-status": "succeeded",
      "x-longhaul-status-code": "201",
      "user-agent": "Longhaul-Webhooks/1",
      traceparent: TRACEPARENT,
    });
    const { secret } = await callUnary(client.getWebhookSecret.bind(client), { project: "dev" }, md(), 5_000);
    expect(new Webhook(secret).verify(got!.body, got!.headers as Record<string, string>)).toEqual({ created: run.runId });
  });

  it("serves a run's deliveries to its own project only, and only to the mesh", async () => {
    const run = addRun({ webhookUrl: `${receiver.url}/hook/${randomUUID()}?mode=flaky` });
    runs.set(run.runId, run);
    await publishFinished(run);
    await eventually(() => lastTold(run.runId) === runsPb.WebhookState.WEBHOOK_STATE_DELIVERED);
    const { delivery } = await callUnary(client.listDeliveries.bind(client), { project: "dev", runId: run.runId }, md(), 5_000);
    expect(delivery).toMatchObject({ runId: run.runId, webhookId: `msg_${run.runId}`, state: "delivered", attemptsMade: 2 });
    expect(delivery!.attempts.map((a) => a.statusCode)).toEqual([503, 200]);
    expect(delivery!.attempts[0]!.error).toBe("HTTP 503");

    const other = callUnary(client.listDeliveries.bind(client), { project: "other", runId: run.runId }, md(), 5_000);
    await expect(other).rejects.toMatchObject({ code: "not_found" });
    const unknown = callUnary(client.listDeliveries.bind(client), { project: "dev", runId: "not-a-uuid" }, md(), 5_000);
    await expect(unknown).rejects.toMatchObject({ code: "not_found" });
    const outsider = callUnary(client.listDeliveries.bind(client), { project: "dev", runId: run.runId }, internalMetadata("wrong-token-wrong-token"), 5_000);
    await expect(outsider).rejects.toMatchObject({ code: "unauthenticated" });
  });

  it("redelivers on request, numbering attempts on, with a stable webhook-id", async () => {
    const run = addRun();
    await publishFinished(run);
    await eventually(() => lastTold(run.runId) === runsPb.WebhookState.WEBHOOK_STATE_DELIVERED);
    const res = await callUnary(client.redeliver.bind(client), { project: "dev", runId: run.runId }, md(), 5_000);
    expect(res.delivery?.runId).toBe(run.runId);
    await eventually(() => hits(run.runId).length === 2);
    await eventually(async () => {
      const { delivery } = await callUnary(client.listDeliveries.bind(client), { project: "dev", runId: run.runId }, md(), 5_000);
      return delivery?.state === "delivered" && delivery.attempts.length === 2;
    });
    expect(new Set(hits(run.runId).map((h) => h.headers["webhook-id"]))).toEqual(new Set([`msg_${run.runId}`]));
    await expect(
      callUnary(client.redeliver.bind(client), { project: "other", runId: run.runId }, md(), 5_000),
    ).rejects.toMatchObject({ code: "not_found" });
  });

  it("signs with the old and the new secret after a rotation", async () => {
    const before = await callUnary(client.getWebhookSecret.bind(client), { project: "rot" }, md(), 5_000);
    const after = await callUnary(client.rotateWebhookSecret.bind(client), { project: "rot" }, md(), 5_000);
    expect(after.previousSecret).toBe(before.secret);
    expect(after.previousExpiresAt!.getTime()).toBeGreaterThan(Date.now() + 86_000_000);
    const run = addRun({ project: "rot" });
    await publishFinished(run);
    await eventually(() => hits(run.runId).length === 1);
    const [got] = hits(run.runId);
    expect(String(got!.headers["webhook-signature"]).split(" ")).toHaveLength(2);
    for (const s of [before.secret, after.secret]) {
      expect(new Webhook(s).verify(got!.body, got!.headers as Record<string, string>)).toBeTruthy();
    }
  });

  it("sends a signed result URL for a body over the inline limit, and JSON for a run with no answer", async () => {
    const big = addRun({ body: Buffer.alloc(4096, 0x62), contentType: "text/plain" });
    const timedOut = addRun({
      status: runsPb.RunStatus.RUN_STATUS_TIMED_OUT,
      statusCode: 0,
      contentType: "",
      body: Buffer.alloc(0),
      errorCode: "timeout",
      errorMessage: "the app did not answer within 12 h",
    });
    await publishFinished(big);
    await publishFinished(timedOut);
    await eventually(() => hits(big.runId).length === 1 && hits(timedOut.runId).length === 1);

    const ref = JSON.parse(hits(big.runId)[0]!.body.toString());
    expect(ref).toMatchObject({ run_id: big.runId, status: "succeeded", status_code: 201, content_type: "text/plain" });
    const url = new URL(ref.result_url);
    expect(url.origin).toBe("https://longhaul.example");
    expect(verifyResultUrl(big.runId, url.searchParams, resultUrlKey(token))).toBeNull();

    const gotTimedOut = hits(timedOut.runId)[0]!;
    expect(gotTimedOut.headers["x-longhaul-run-status"]).toBe("timed_out");
    expect(gotTimedOut.headers["x-longhaul-status-code"]).toBe("0");
    expect(JSON.parse(gotTimedOut.body.toString())).toEqual({
      run_id: timedOut.runId,
      status: "timed_out",
      error: { code: "timeout", message: "the app did not answer within 12 h" },
    });
  });

  it("acks runs without a webhook and malformed events without sending anything", async () => {
    const quiet = addRun({ webhookUrl: "" });
    const names = natsNames(nats.prefix);
    await jetstream(nc).publish(names.finished("dev"), "not json", { msgID: randomUUID() });
    await publishFinished(quiet);
    const marker = addRun();
    await publishFinished(marker);
    await eventually(() => hits(marker.runId).length === 1);
    expect(told.some((t) => t.runId === quiet.runId)).toBe(false);
    expect(hits(quiet.runId)).toHaveLength(0);
  });

  it("reports health and metrics", async () => {
    const Health = makeGenericClientConstructor(healthService, "Health") as unknown as new (
      ...a: ConstructorParameters<typeof notifierPb.NotifierInternalServiceClient>
    ) => Client & { check(req: { service: string }, cb: (e: Error | null, r: { status: string | number }) => void): void };
    const health = createClient(Health, `127.0.0.1:${notifier.grpcPort}`);
    const status = await new Promise<string | number>((resolve, reject) =>
      health.check({ service: "" }, (err, res) => (err ? reject(err) : resolve(res.status))),
    );
    health.close();
    expect(status === "SERVING" || status === 1).toBe(true);

    const text = await (await fetch(`http://127.0.0.1:${notifier.metricsPort}/metrics`)).text();
    expect(text).toMatch(/longhaul_webhook_attempts_total\{outcome="delivered"[^}]*\} [1-9]/);
    expect(text).toMatch(/longhaul_webhook_attempts_total\{outcome="retrying"[^}]*\} [1-9]/);
    expect(text).toMatch(/longhaul_webhook_deliveries_pending\{[^}]*\} \d+/);
    expect(text).toMatch(/longhaul_webhook_attempt_duration_seconds_bucket/);
  });
});
