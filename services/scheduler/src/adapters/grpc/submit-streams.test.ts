import { status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import { createLogger } from "@longhaul/shared/logger";
import { runsPb, schedulerPb } from "@longhaul/shared/proto";
import { internalServers } from "../../testing/internal-server.js";
import type { Submit } from "./public-services.js";
import { createSubmitStreams, type SubmitStreams } from "./submit-streams.js";

// The scheduler's side of SubmitRuns on a real gRPC server and client; the
// submit itself is a fake whose behaviour each request's app names.
const log = createLogger("submit-streams-test", "silent");

type Duplex = ReturnType<schedulerPb.SchedulerInternalServiceClient["submitRuns"]>;

const internal = internalServers(log);
afterEach(internal.stop);

/** Submits of app `slow-<n>` wait until `release(n)`; `bad`, `quota`, `boom` fail; others are accepted. */
function fakeSubmit() {
  const waiting = new Map<string, () => void>();
  const seen: Array<{ authorization: unknown; app: string }> = [];
  let running = 0;
  let most = 0;
  const submit: Submit = async (authorization, req) => {
    seen.push({ authorization, app: req.app });
    running++;
    most = Math.max(most, running);
    try {
      if (req.app.startsWith("slow")) await new Promise<void>((r) => waiting.set(req.app, r));
      if (req.app === "bad") throw new LonghaulError("invalid_argument", "webhook_url: must be http(s)");
      if (req.app === "quota") {
        throw new LonghaulError("resource_exhausted", "project p is over its limit", {
          retryAfterSeconds: 7,
          quota: { limit: "submits_per_second", quota: 3, windowSeconds: 300, remaining: 0, resetSeconds: 7 },
        });
      }
      if (req.app === "boom") throw new Error("a bug with a secret in it");
      return { runId: `run-${req.app}`, existing: false };
    } finally {
      running--;
    }
  };
  return { submit, seen, release: (app: string) => waiting.get(app)?.(), waitingFor: () => [...waiting.keys()], most: () => most };
}

async function serve(submit: Submit): Promise<{ streams: SubmitStreams; open(): Duplex; client: schedulerPb.SchedulerInternalServiceClient }> {
  const streams = createSubmitStreams(submit, log);
  const { client, metadata } = await internal.serve({ submitRuns: (call: Parameters<SubmitStreams["serve"]>[0]) => streams.serve(call) });
  return { streams, open: () => client.submitRuns(metadata), client };
}

/** The answers of a stream, by id, and how it ended. */
function collect(call: Duplex) {
  const answers = new Map<number, schedulerPb.SubmitRunsResponse["result"]>();
  const order: number[] = [];
  const ended = new Promise<ServiceError | undefined>((resolve) => {
    call.on("data", (res: schedulerPb.SubmitRunsResponse) => {
      answers.set(res.id, res.result);
      order.push(res.id);
    });
    call.on("error", (err: ServiceError) => resolve(err));
    call.on("status", (s: { code: number }) => s.code === GrpcStatus.OK && resolve(undefined));
  });
  return { answers, order, ended };
}

const send = (call: Duplex, id: number, app: string, authorization = "Bearer k") =>
  call.write({ id, authorization, submit: runsPb.SubmitRunRequest.fromPartial({ app }), traceparent: "", tracestate: "" });

describe("SubmitRuns streams (scheduler side)", () => {
  it("handles messages concurrently and answers each by id with its own result or error", async () => {
    const fake = fakeSubmit();
    const { open } = await serve(fake.submit);
    const call = open();
    const got = collect(call);
    send(call, 1, "slow-1");
    send(call, 2, "ok");
    send(call, 3, "bad", "Bearer other");
    send(call, 4, "quota");
    send(call, 5, "boom");
    call.write({ id: 6, authorization: "Bearer k", traceparent: "", tracestate: "" });
    await expect.poll(() => got.answers.size).toBe(5);
    // The slow one holds nobody up: the others were answered while it waited.
    expect(got.answers.has(1)).toBe(false);
    fake.release("slow-1");
    await expect.poll(() => got.answers.size).toBe(6);
    expect(got.order.at(-1)).toBe(1);
    expect(got.answers.get(1)).toEqual({ $case: "submitted", value: { runId: "run-slow-1", existing: false } });
    expect(got.answers.get(2)).toEqual({ $case: "submitted", value: { runId: "run-ok", existing: false } });
    expect(got.answers.get(3)).toEqual({ $case: "error", value: { code: "invalid_argument", message: "webhook_url: must be http(s)", quotaJson: "" } });
    expect(got.answers.get(4)).toEqual({
      $case: "error",
      value: {
        code: "resource_exhausted",
        message: "project p is over its limit",
        retryAfterSeconds: 7,
        quotaJson: JSON.stringify({ limit: "submits_per_second", quota: 3, windowSeconds: 300, remaining: 0, resetSeconds: 7 }),
      },
    });
    // An unexpected failure is internal, its cause never shown.
    expect(got.answers.get(5)).toEqual({ $case: "error", value: { code: "internal", message: "internal error", quotaJson: "" } });
    expect(got.answers.get(6)).toEqual({ $case: "error", value: { code: "invalid_argument", message: "submit: required", quotaJson: "" } });
    // Each message's own authorization reached the submit.
    expect(fake.seen.find((s) => s.app === "bad")?.authorization).toBe("Bearer other");
    expect(fake.most()).toBeGreaterThanOrEqual(2);
    // The client half-closes: the stream ends OK.
    call.end();
    expect(await got.ended).toBeUndefined();
  });

  it("refuses a stream without the internal token", async () => {
    const { client } = await serve(fakeSubmit().submit);
    const call = client.submitRuns();
    const got = collect(call);
    send(call, 1, "ok");
    expect((await got.ended)?.code).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(got.answers.size).toBe(0);
  });

  it("ends only once the submits in flight are answered after a half-close", async () => {
    const fake = fakeSubmit();
    const { open } = await serve(fake.submit);
    const call = open();
    const got = collect(call);
    send(call, 1, "slow-a");
    await expect.poll(() => fake.waitingFor()).toEqual(["slow-a"]);
    call.end();
    await new Promise((r) => setTimeout(r, 50));
    expect(got.answers.size).toBe(0);
    fake.release("slow-a");
    expect(await got.ended).toBeUndefined();
    expect(got.answers.get(1)?.$case).toBe("submitted");
  });

  it("on close: answers what it took, refuses new messages as unavailable, then ends every stream UNAVAILABLE", async () => {
    const fake = fakeSubmit();
    const { streams, open } = await serve(fake.submit);
    const call = open();
    const idle = open();
    const got = collect(call);
    const gotIdle = collect(idle);
    send(call, 1, "slow-x");
    await expect.poll(() => fake.waitingFor()).toEqual(["slow-x"]);
    let closed = false;
    const closing = streams.close(10_000).then(() => (closed = true));
    // The idle stream ends at once; the busy one waits for its submit.
    expect((await gotIdle.ended)?.code).toBe(GrpcStatus.UNAVAILABLE);
    send(call, 2, "ok");
    await expect.poll(() => got.answers.get(2)).toEqual({
      $case: "error",
      value: { code: "unavailable", message: "the scheduler is shutting down; submit to another copy", quotaJson: "" },
    });
    expect(closed).toBe(false);
    fake.release("slow-x");
    const err = await got.ended;
    expect(err?.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(got.answers.get(1)).toEqual({ $case: "submitted", value: { runId: "run-slow-x", existing: false } });
    await closing;
    expect(closed).toBe(true);
    // A stream opened after close ends at once.
    const late = collect(open());
    expect((await late.ended)?.code).toBe(GrpcStatus.UNAVAILABLE);
  });

  it("on close: a submit that does not finish in time holds the shutdown no longer than the limit; its stream ends UNAVAILABLE", async () => {
    const fake = fakeSubmit();
    const { streams, open } = await serve(fake.submit);
    const call = open();
    const got = collect(call);
    send(call, 1, "slow-stuck");
    await expect.poll(() => fake.waitingFor()).toEqual(["slow-stuck"]);
    const started = Date.now();
    let closed = false;
    const closing = streams.close(300).then(() => (closed = true));
    await expect.poll(() => closed, { timeout: 3_000 }).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect((await got.ended)?.code).toBe(GrpcStatus.UNAVAILABLE);
    // The submit finishing later answers nothing on the ended stream.
    fake.release("slow-stuck");
    await closing;
    await new Promise((r) => setTimeout(r, 50));
    expect(got.answers.has(1)).toBe(false);
  });
});
