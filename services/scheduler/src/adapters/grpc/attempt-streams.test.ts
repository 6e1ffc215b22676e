import { status as GrpcStatus, type Metadata, type ServiceError } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import { createLogger } from "@longhaul/shared/logger";
import { runsPb, schedulerPb } from "@longhaul/shared/proto";
import { internalServers } from "../../testing/internal-server.js";
import type { RunLifecycle } from "../../core/run-lifecycle.js";
import { createAttemptStreams, type AttemptStreams } from "./attempt-streams.js";

// The scheduler's side of Attempts on a real gRPC server and client; the
// lifecycle is a fake whose outcomes wait until the test lets them go.
const log = createLogger("attempt-streams-test", "silent");

type Duplex = ReturnType<schedulerPb.SchedulerInternalServiceClient["attempts"]>;

const internal = internalServers(log);
afterEach(internal.stop);

/** Outcomes wait until `release(runId)`; each is counted as recorded then. */
function fakeLifecycle() {
  const waiting = new Map<string, () => void>();
  const recorded: string[] = [];
  const lifecycle = {
    complete: async (runId: string) => {
      await new Promise<void>((r) => waiting.set(runId, r));
      recorded.push(runId);
      return { status: "succeeded" };
    },
  } as unknown as RunLifecycle;
  return { lifecycle, recorded, release: (runId: string) => waiting.get(runId)?.(), waitingFor: () => [...waiting.keys()] };
}

async function serve(lifecycle: RunLifecycle): Promise<{ streams: AttemptStreams; open(): Duplex }> {
  const streams = createAttemptStreams(lifecycle, 30, log);
  const { client, metadata } = await internal.serve({ attempts: (call: Parameters<AttemptStreams["serve"]>[0]) => streams.serve(call) });
  return { streams, open: () => client.attempts(metadata) };
}

/** The answers of a stream, by id, and how it ended (with when). */
function collect(call: Duplex) {
  const answers = new Map<number, schedulerPb.AttemptsResponse["result"]>();
  let endedAt = 0;
  const ended = new Promise<ServiceError | undefined>((resolve) => {
    call.on("data", (res: schedulerPb.AttemptsResponse) => answers.set(res.id, res.result));
    call.on("error", (err: ServiceError) => {
      endedAt = Date.now();
      resolve(err);
    });
    call.on("status", (s: { code: number }) => s.code === GrpcStatus.OK && resolve(undefined));
  });
  return { answers, ended, endedAt: () => endedAt };
}

const complete = (call: Duplex, id: number, runId: string) =>
  call.write({ id, call: { $case: "complete", value: schedulerPb.CompleteRunRequest.fromPartial({ runId, attempt: 1, invokerId: "i" }) }, traceparent: "", tracestate: "", more: [] });

describe("Attempts streams (scheduler side)", () => {
  it("on close: an outcome taken is answered (recorded once), one sent after is refused as unavailable, then the stream ends UNAVAILABLE", async () => {
    const fake = fakeLifecycle();
    const { streams, open } = await serve(fake.lifecycle);
    const call = open();
    const got = collect(call);
    complete(call, 1, "run-a");
    await expect.poll(() => fake.waitingFor()).toEqual(["run-a"]);
    let closed = false;
    const closing = streams.close(10_000).then(() => (closed = true));
    complete(call, 2, "run-b");
    await expect.poll(() => got.answers.get(2)).toEqual({
      $case: "error",
      value: { code: "unavailable", message: "the scheduler is shutting down; send it to another copy" },
    });
    // The stream waits for the outcome it took.
    await new Promise((r) => setTimeout(r, 50));
    expect(got.endedAt()).toBe(0);
    expect(closed).toBe(false);
    fake.release("run-a");
    const err = await got.ended;
    expect(err?.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(got.answers.get(1)).toEqual({ $case: "complete", value: { accepted: true, status: runsPb.RunStatus.RUN_STATUS_SUCCEEDED } });
    expect(fake.recorded).toEqual(["run-a"]);
    await closing;
  });
});

describe("Attempts streams: several requests in one message", () => {
  it("says so in its headers, and answers each request of a message with its own id; one that fails answers only itself", async () => {
    const recorded: string[] = [];
    const lifecycle = {
      complete: async (runId: string) => {
        if (runId === "run-gone") throw new LonghaulError("not_found", "run run-gone not found");
        recorded.push(runId);
        return { status: "succeeded" };
      },
    } as unknown as RunLifecycle;
    const { open } = await serve(lifecycle);
    const call = open();
    const headers = new Promise<Metadata>((resolve) => call.on("metadata", resolve));
    const got = collect(call);
    const request = (id: number, runId: string): schedulerPb.AttemptsRequest => ({
      id,
      call: { $case: "complete", value: schedulerPb.CompleteRunRequest.fromPartial({ runId, attempt: 1, invokerId: "i" }) },
      traceparent: "",
      tracestate: "",
      more: [],
    });
    call.write({ ...request(1, "run-a"), more: [request(2, "run-gone"), request(3, "run-c")] });
    expect((await headers).get("longhaul-attempts-batches")).toEqual(["1"]);
    await expect.poll(() => got.answers.size).toBe(3);
    const accepted = { $case: "complete", value: { accepted: true, status: runsPb.RunStatus.RUN_STATUS_SUCCEEDED } };
    expect(got.answers.get(1)).toEqual(accepted);
    expect(got.answers.get(2)).toEqual({ $case: "error", value: { code: "not_found", message: "run run-gone not found" } });
    expect(got.answers.get(3)).toEqual(accepted);
    expect(recorded.sort()).toEqual(["run-a", "run-c"]);
    call.end();
    expect(await got.ended).toBeUndefined();
  });
});
