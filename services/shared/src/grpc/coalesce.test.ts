// coalesceWrites: what a stream takes while a write is on its way is handed
// on at once (a Writable whose writes finish later, as grpc-js's do), and
// over a real grpc-js server and client on loopback the messages still
// arrive in order, none lost.
import { Writable } from "node:stream";
import type { ServerDuplexStream } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../logger.js";
import { schedulerPb } from "../proto/index.js";
import { createClient, internalMetadata } from "./client.js";
import { coalesceWrites } from "./coalesce.js";
import { createGrpcServer } from "./server.js";

const TOKEN = "t".repeat(24);
const MESSAGES = 40;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * An object-mode Writable like grpc-js's streams: each message's write
 * finishes a turn later. Counts the most writes handed on and not yet
 * finished at once.
 */
function slowSink() {
  const seen: number[] = [];
  let inFlight = 0;
  let most = 0;
  const sink = new Writable({
    objectMode: true,
    write(chunk: number, _encoding, callback) {
      seen.push(chunk);
      most = Math.max(most, ++inFlight);
      setImmediate(() => {
        inFlight--;
        callback();
      });
    },
  });
  return { sink, seen, most: () => most };
}

async function writeAll(sink: Writable): Promise<void> {
  for (let m = 1; m <= MESSAGES; m++) sink.write(m);
  await new Promise<void>((resolve, reject) => sink.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

describe("coalesceWrites", () => {
  it("hands on every message that queued while one was being written, at once", async () => {
    const { sink, seen, most } = slowSink();
    await writeAll(coalesceWrites(sink));
    expect(seen).toEqual(Array.from({ length: MESSAGES }, (_, i) => i + 1));
    // The first alone, then the other 39 together.
    expect(most()).toBe(MESSAGES - 1);
  });

  it("is what makes the difference: a plain stream hands on one at a time", async () => {
    const { sink, most } = slowSink();
    await writeAll(sink);
    expect(most()).toBe(1);
  });

  it("answers a batch once, with its first failure, and hands on nothing after it", () => {
    const handed: number[] = [];
    const sink = coalesceWrites(
      new Writable({
        objectMode: true,
        write(chunk: number, _encoding, callback) {
          handed.push(chunk);
          callback(chunk >= 2 ? new Error(`message ${chunk} failed`) : null);
        },
      }),
    );
    const answers: (Error | null | undefined)[] = [];
    sink._writev!([1, 2, 3, 4].map((chunk) => ({ chunk, encoding: "utf8" as const })), (err) => answers.push(err));
    expect(answers.map((e) => e?.message)).toEqual(["message 2 failed"]);
    expect(handed).toEqual([1, 2]);
  });

  it("batches a real grpc-js server stream's messages, in order, none lost", async () => {
    const batches: number[] = [];
    const server = createGrpcServer({ address: "127.0.0.1:0", internalToken: TOKEN, log: createLogger("test", "silent") });
    server.add(
      schedulerPb.SchedulerInternalServiceService,
      {
        submitRuns: (call: ServerDuplexStream<schedulerPb.SubmitRunsRequest, schedulerPb.SubmitRunsResponse>) => {
          coalesceWrites(call);
          const writev = call._writev!;
          call._writev = function (chunks, callback) {
            batches.push(chunks.length);
            writev.call(this, chunks, callback);
          };
          call.once("data", () => {
            for (let id = 1; id <= MESSAGES; id++) call.write({ id, result: undefined });
            call.end();
          });
        },
      },
      { internal: true },
    );
    const port = await server.start();
    cleanups.push(() => server.stop(0));
    const client = createClient(schedulerPb.SchedulerInternalServiceClient, `127.0.0.1:${port}`);
    cleanups.push(() => client.close());

    const call = client.submitRuns(internalMetadata(TOKEN));
    const ids: number[] = [];
    call.on("data", (res: schedulerPb.SubmitRunsResponse) => ids.push(res.id));
    const ended = new Promise<void>((resolve, reject) => {
      call.on("end", resolve);
      call.on("error", reject);
    });
    call.write({ id: 1, authorization: "", traceparent: "", tracestate: "" });
    call.end();
    await ended;
    expect(ids).toEqual(Array.from({ length: MESSAGES }, (_, i) => i + 1));
    // grpc-js held the rest back while the first was written: they went on together.
    expect(Math.max(...batches)).toBe(MESSAGES - 1);
  });
});
