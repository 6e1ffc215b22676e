import { Metadata, type ServerDuplexStream } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import { ATTEMPTS_BATCHES_METADATA_KEY, createGrpcServer, type GrpcServer } from "@longhaul/shared/grpc";
import { createLogger } from "@longhaul/shared/logger";
import { schedulerPb } from "@longhaul/shared/proto";
import type { RunOutcome } from "../../core/ports.js";
import { createSchedulerClient, type SchedulerClient } from "./scheduler-client.js";

// The invoker's Attempts client against a real gRPC server on loopback that
// records how many requests each message carried and answers each by id.
const TOKEN = "scheduler-client-test-token";
const log = createLogger("scheduler-client-test", "silent");

let server: GrpcServer | undefined;
let client: SchedulerClient | undefined;
afterEach(async () => {
  client?.close();
  await server?.stop(100);
  server = client = undefined;
});

/**
 * Requests per message received, in order; `batches`: the server says it
 * takes several per message. While `holdAnswers` is set, answers wait for
 * `answerHeld()`.
 */
async function attemptsServer(batches: boolean) {
  const messages: string[][] = [];
  const waiting: Array<() => void> = [];
  const control = {
    address: "",
    messages,
    holdAnswers: false,
    answerHeld: () => {
      for (const answer of waiting.splice(0)) answer();
    },
  };
  server = createGrpcServer({ log, address: "127.0.0.1:0", internalToken: TOKEN });
  server.add(
    schedulerPb.SchedulerInternalServiceService,
    {
      attempts: (call: ServerDuplexStream<schedulerPb.AttemptsRequest, schedulerPb.AttemptsResponse>) => {
        const headers = new Metadata();
        if (batches) headers.set(ATTEMPTS_BATCHES_METADATA_KEY, "1");
        call.sendMetadata(headers);
        call.on("data", (message: schedulerPb.AttemptsRequest) => {
          const requests = [message, ...message.more];
          messages.push(requests.map((r) => (r.call?.$case === "complete" ? r.call.value.runId : "")));
          for (const r of requests) {
            const runId = r.call?.$case === "complete" ? r.call.value.runId : "";
            const answer = () =>
              call.write({
                id: r.id,
                result:
                  runId === "run-gone"
                    ? { $case: "error", value: { code: "not_found", message: "run run-gone not found" } }
                    : { $case: "complete", value: { accepted: true, status: 0 } },
              });
            if (control.holdAnswers) waiting.push(answer);
            else answer();
          }
        });
        call.on("end", () => call.end());
      },
    } as never,
    { internal: true },
  );
  control.address = `127.0.0.1:${await server.start()}`;
  return control;
}

const outcome = (bodyBytes = 2): RunOutcome => ({
  statusCode: 200,
  headers: [],
  body: new Uint8Array(bodyBytes),
  bodyTruncated: false,
  errorCode: "",
  errorMessage: "",
  retryAfterSeconds: 0,
});

const complete = (runId: string, bodyBytes?: number) => client!.completeRun({ runId, attempt: 1 }, "invoker-1", outcome(bodyBytes));

/** One outcome on each of the client's two streams, answered: both streams are open and their headers arrived. */
async function openStreams() {
  await complete("warm-1");
  await complete("warm-2");
}

describe("the scheduler client's outcome window", () => {
  it("sends an outcome at once while no answer is awaited, and those that come meanwhile together, in one message; each is answered as its own", async () => {
    const s = await attemptsServer(true);
    client = createSchedulerClient(s.address, TOKEN, { outcomeWindowMs: 100 });
    await openStreams();
    const answers = ["run-a", "run-b", "run-gone", "run-d", "run-e"].map((id) => complete(id));
    const settled = await Promise.allSettled(answers);
    expect(s.messages.slice(2)).toEqual([["run-a"], ["run-b", "run-gone", "run-d", "run-e"]]);
    expect(settled.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as LonghaulError).code))).toEqual([
      { accepted: true },
      { accepted: true },
      "not_found",
      { accepted: true },
      { accepted: true },
    ]);
  });

  it("does not hold an outcome with a large body: it goes at once, alone", async () => {
    const s = await attemptsServer(true);
    client = createSchedulerClient(s.address, TOKEN, { outcomeWindowMs: 100 });
    await openStreams();
    const answers = [complete("run-a"), complete("run-b"), complete("run-big", 300 * 1024), complete("run-c")];
    await Promise.all(answers);
    expect(s.messages.slice(2)).toEqual([["run-a"], ["run-big"], ["run-b", "run-c"]]);
  });

  it("sends one outcome per message to a scheduler that does not say it takes several", async () => {
    const s = await attemptsServer(false);
    client = createSchedulerClient(s.address, TOKEN, { outcomeWindowMs: 100 });
    await openStreams();
    await Promise.all(["run-a", "run-b", "run-c"].map((id) => complete(id)));
    expect(s.messages.slice(2)).toEqual([["run-a"], ["run-b"], ["run-c"]]);
  });

  it("without a window, sends each outcome at once", async () => {
    const s = await attemptsServer(true);
    client = createSchedulerClient(s.address, TOKEN);
    await openStreams();
    await Promise.all(["run-a", "run-b", "run-c"].map((id) => complete(id)));
    expect(s.messages.slice(2)).toEqual([["run-a"], ["run-b"], ["run-c"]]);
  });

  it("sends what it holds as soon as every outcome sent has its answer, not at the window's end", async () => {
    const s = await attemptsServer(true);
    client = createSchedulerClient(s.address, TOKEN, { outcomeWindowMs: 5_000 });
    await openStreams();
    s.holdAnswers = true;
    const first = complete("run-a");
    const held = complete("run-b");
    await expect.poll(() => s.messages.length).toBe(3);
    await new Promise((r) => setTimeout(r, 100));
    expect(s.messages.slice(2)).toEqual([["run-a"]]); // held while run-a's answer is awaited
    s.holdAnswers = false;
    s.answerHeld();
    await first;
    await expect.poll(() => s.messages.slice(2)).toEqual([["run-a"], ["run-b"]]);
    await held;
  });

  it("fails what it holds as unavailable when the client closes", async () => {
    const s = await attemptsServer(true);
    client = createSchedulerClient(s.address, TOKEN, { outcomeWindowMs: 5_000 });
    await openStreams();
    s.holdAnswers = true;
    const first = complete("run-a").catch(() => undefined);
    const held = complete("run-b");
    await expect.poll(() => s.messages.length).toBe(3);
    client.close();
    await expect(held).rejects.toMatchObject({ code: "unavailable" });
    await first;
    expect(s.messages.slice(2)).toEqual([["run-a"]]);
  });
});
