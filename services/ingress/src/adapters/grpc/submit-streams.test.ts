import { Metadata, type ServerDuplexStream } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import { createClient, createGrpcServer, errorToFields, internalMetadata, isTransportFailure, toServiceError, type GrpcServer } from "@longhaul/shared/grpc";
import { createLogger } from "@longhaul/shared/logger";
import { runsPb, schedulerPb } from "@longhaul/shared/proto";
import { createSubmitStreams, type SubmitStreams, type SubmitStreamsOptions } from "./submit-streams.js";

// The gateway's side of SubmitRuns against a real gRPC server that plays the
// scheduler: each test scripts how it answers.
const TOKEN = "submit-streams-client-test";
const log = createLogger("submit-streams-client-test", "silent");

type ServerCall = ServerDuplexStream<schedulerPb.SubmitRunsRequest, schedulerPb.SubmitRunsResponse>;

interface Scheduler {
  /** Streams opened, in order. */
  calls: ServerCall[];
  /** Requests received, with the stream they came on. */
  received: Array<{ call: ServerCall; req: schedulerPb.SubmitRunsRequest }>;
  /** Half-closes seen from the client, by stream. */
  halfClosed: Set<ServerCall>;
}

let server: GrpcServer | undefined;
let client: schedulerPb.SchedulerInternalServiceClient | undefined;
let streams: SubmitStreams | undefined;
afterEach(async () => {
  streams?.close();
  client?.close();
  await server?.stop(100);
  server = streams = client = undefined;
});

/**
 * A scheduler stand-in. `answer` says what to send for a request (undefined:
 * nothing, the test answers itself); without `serveStreams` it does not serve
 * SubmitRuns at all (an older copy).
 */
async function start(
  answer: (req: schedulerPb.SubmitRunsRequest, call: ServerCall) => schedulerPb.SubmitRunsResponse["result"] | undefined,
  options: Partial<SubmitStreamsOptions> & { serveStreams?: boolean; maxConnectionAgeMs?: number } = {},
): Promise<Scheduler> {
  const s: Scheduler = { calls: [], received: [], halfClosed: new Set() };
  const { serveStreams, maxConnectionAgeMs, ...streamOptions } = options;
  server = createGrpcServer({ log, address: "127.0.0.1:0", internalToken: TOKEN, maxConnectionAgeMs, maxConnectionAgeGraceMs: 60_000 });
  const impl =
    serveStreams === false
      ? {}
      : {
          submitRuns(call: ServerCall) {
            s.calls.push(call);
            call.sendMetadata(new Metadata());
            call.on("data", (req: schedulerPb.SubmitRunsRequest) => {
              s.received.push({ call, req });
              const result = answer(req, call);
              if (result) call.write({ id: req.id, result });
            });
            call.on("end", () => {
              s.halfClosed.add(call);
            });
          },
        };
  server.add(schedulerPb.SchedulerInternalServiceService, impl as never, { internal: true });
  const port = await server.start();
  client = createClient(schedulerPb.SchedulerInternalServiceClient, `127.0.0.1:${port}`);
  const c = client;
  streams = createSubmitStreams({
    open: () => c.submitRuns(internalMetadata(TOKEN)),
    channel: c.getChannel(),
    streams: 1,
    log,
    retry: { initialMs: 20, maxMs: 100 },
    ...streamOptions,
  });
  return s;
}

const request = (app: string) => runsPb.SubmitRunRequest.fromPartial({ app, runId: `00000000-0000-4000-8000-00000000000${app.length % 10}` });
const accepted = (req: schedulerPb.SubmitRunsRequest) => ({ $case: "submitted" as const, value: { runId: `run-${req.submit?.app}`, existing: false } });

/** Sends on a stream, waiting until one is open (the first submits go by the unary call). */
async function onStream(app: string, timeoutMs = 10_000, signal?: AbortSignal): Promise<{ answer: Promise<runsPb.SubmitRunResponse> }> {
  const until = Date.now() + 5_000;
  for (;;) {
    const sent = streams!.submit("Bearer key", request(app), timeoutMs, signal);
    // Handled by the test once returned; kept from being an unhandled rejection meanwhile.
    if (sent) {
      sent.catch(() => undefined);
      return { answer: sent };
    }
    if (Date.now() > until) throw new Error(`no stream took ${app} within 5 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("SubmitRuns streams (gateway side)", () => {
  it("opens at the first submit (which goes by the unary call), then sends submits with their key, answers matched by id", async () => {
    const sched = await start((req) =>
      req.submit?.app === "bad"
        ? {
            $case: "error",
            value: errorToFields(
              new LonghaulError("resource_exhausted", "over the limit", {
                retryAfterSeconds: 3,
                quota: { limit: "max_queued", quota: 2, remaining: 0, resetSeconds: 3 },
              }),
            ),
          }
        : req.submit?.app === "later"
          ? undefined
          : accepted(req),
    );
    expect(streams!.submit("Bearer key", request("first"), 1000)).toBeUndefined();
    const later = (await onStream("later")).answer;
    const [ok, bad] = [(await onStream("ok")).answer, (await onStream("bad")).answer];
    await expect(ok).resolves.toEqual({ runId: "run-ok", existing: false });
    const err = await bad.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LonghaulError);
    expect(err).toMatchObject({
      code: "resource_exhausted",
      message: "over the limit",
      retryAfterSeconds: 3,
      quota: { limit: "max_queued", quota: 2, remaining: 0, resetSeconds: 3 },
    });
    // One stream carried them all, each with the caller's authorization.
    expect(sched.calls).toHaveLength(1);
    expect(sched.received.map((r) => r.req.authorization)).toEqual(["Bearer key", "Bearer key", "Bearer key"]);
    // The one still unanswered gets its answer late, out of order.
    const waiting = sched.received.find((r) => r.req.submit?.app === "later")!;
    waiting.call.write({ id: waiting.req.id, result: accepted(waiting.req) });
    await expect(later).resolves.toEqual({ runId: "run-later", existing: false });
  });

  it("rejects at the submit's deadline or its caller's abort; the stream goes on", async () => {
    await start((req) => (req.submit?.app === "ok" ? accepted(req) : undefined));
    const slow = (await onStream("slow", 200)).answer;
    const started = Date.now();
    const late = (await slow.catch((e: unknown) => e)) as LonghaulError;
    expect(late).toMatchObject({ code: "deadline_exceeded" });
    expect(Date.now() - started).toBeLessThan(2_000);
    // Shown to the HTTP client as a unary call's deadline is: the generic transport text.
    expect(isTransportFailure(late)).toBe(true);
    const abort = new AbortController();
    const aborted = (await onStream("slow2", 10_000, abort.signal)).answer;
    abort.abort();
    await expect(aborted).rejects.toMatchObject({ code: "deadline_exceeded" });
    await expect((await onStream("ok")).answer).resolves.toEqual({ runId: "run-ok", existing: false });
  });

  it("fails the submits in flight as unavailable when the stream breaks, then opens another", async () => {
    const sched = await start(() => undefined);
    const a = (await onStream("a")).answer;
    const b = (await onStream("b")).answer;
    await expect.poll(() => sched.received.length).toBe(2);
    sched.calls[0]!.emit("error", toServiceError(new LonghaulError("unavailable", "going away")));
    await expect(a).rejects.toMatchObject({ code: "unavailable", message: "going away" });
    await expect(b).rejects.toMatchObject({ code: "unavailable" });
    // A break the scheduler did not explain (here a reset stream) is the transport's: shown as a unary call's.
    await onStream("c0");
    const c = (await onStream("c1")).answer;
    await expect.poll(() => sched.received.length).toBe(4);
    sched.calls[1]!.emit("error", { code: 13, details: "RST_STREAM", metadata: new Metadata() });
    const broke = (await c.catch((e: unknown) => e)) as LonghaulError;
    expect(broke).toMatchObject({ code: "unavailable" });
    expect(isTransportFailure(broke)).toBe(true);
    // A new stream comes up after each back-off; meanwhile submits go by the unary call.
    await onStream("d");
    expect(sched.calls).toHaveLength(3);
  });

  it("a stream answered unavailable (its copy is shutting down) takes no more submits: it delivers what it owes, ends, and another opens", async () => {
    const refusing = new Set<ServerCall>();
    const sched = await start((req, call) => {
      if (req.submit?.app.startsWith("held")) return undefined;
      if (req.submit?.app === "refused") refusing.add(call);
      return refusing.has(call) ? { $case: "error", value: errorToFields(new LonghaulError("unavailable", "the scheduler is shutting down")) } : accepted(req);
    }, { maxAgeMs: 600_000 });
    const held = (await onStream("held")).answer;
    await expect((await onStream("refused")).answer).rejects.toMatchObject({ code: "unavailable" });
    // At once, as a retry of the refused submit would be: never the refusing stream again.
    const retried = streams!.submit("Bearer key", request("retry"), 1000);
    retried?.catch(() => undefined);
    await expect.poll(() => sched.halfClosed.has(sched.calls[0]!)).toBe(true);
    await expect((await onStream("next")).answer).resolves.toEqual({ runId: "run-next", existing: false });
    expect(sched.calls).toHaveLength(2);
    expect(sched.received.filter((r) => r.call === sched.calls[0]).map((r) => r.req.submit?.app)).toEqual(["held", "refused"]);
    // The retired stream still delivers the answer it owed.
    const first = sched.received.find((r) => r.req.submit?.app === "held")!;
    first.call.write({ id: first.req.id, result: accepted(first.req) });
    await expect(held).resolves.toEqual({ runId: "run-held", existing: false });
    if (retried) await expect(retried).resolves.toEqual({ runId: "run-retry", existing: false });
  });

  it("past its bound a stream takes no more submits: the caller uses the unary call", async () => {
    await start(() => undefined, { maxInFlight: 2 });
    await onStream("a");
    await onStream("b");
    expect(streams!.submit("Bearer key", request("c"), 1000)).toBeUndefined();
  });

  it("a large body goes by the unary call, never holding up the stream", async () => {
    await start((req) => accepted(req));
    await (await onStream("small")).answer;
    const big = runsPb.SubmitRunRequest.fromPartial({ app: "big", request: { method: "POST", path: "/", body: Buffer.alloc(256 * 1024 + 1) } });
    expect(streams!.submit("Bearer key", big, 1000)).toBeUndefined();
    const fits = runsPb.SubmitRunRequest.fromPartial({ app: "fits", request: { method: "POST", path: "/", body: Buffer.alloc(256 * 1024) } });
    await expect(streams!.submit("Bearer key", fits, 1000)).resolves.toEqual({ runId: "run-fits", existing: false });
  });

  it("a scheduler without SubmitRuns: every submit goes by the unary call", async () => {
    await start(() => undefined, { serveStreams: false });
    expect(streams!.submit("Bearer key", request("a"), 1000)).toBeUndefined();
    await new Promise((r) => setTimeout(r, 300));
    expect(streams!.submit("Bearer key", request("b"), 1000)).toBeUndefined();
  });

  it("replaces a stream past its age: the successor takes the submits, the old one is half-closed and still delivers its answers", async () => {
    const sched = await start((req) => (req.submit?.app.startsWith("held") ? undefined : accepted(req)), { maxAgeMs: 100 });
    const held = (await onStream("held")).answer;
    await new Promise((r) => setTimeout(r, 150));
    // Past its age: this submit still goes on the old stream, and its successor opens.
    await expect((await onStream("x")).answer).resolves.toEqual({ runId: "run-x", existing: false });
    await expect.poll(() => sched.calls.length).toBe(2);
    await expect.poll(() => sched.halfClosed.has(sched.calls[0]!)).toBe(true);
    await expect((await onStream("y")).answer).resolves.toEqual({ runId: "run-y", existing: false });
    expect(sched.received.find((r) => r.req.submit?.app === "y")?.call).toBe(sched.calls[1]);
    const first = sched.received.find((r) => r.req.submit?.app === "held")!;
    first.call.write({ id: first.req.id, result: accepted(first.req) });
    first.call.end();
    await expect(held).resolves.toEqual({ runId: "run-held", existing: false });
  });

  it("renews a stream whose connection was told to go away (max connection age); the old one still delivers its answers", async () => {
    const sched = await start((req) => (req.submit?.app === "held" ? undefined : accepted(req)), { maxConnectionAgeMs: 1_000, maxAgeMs: 600_000 });
    const held = (await onStream("held")).answer;
    // GOAWAY after ~1 s (±10 %): the stream is replaced without waiting for its own age.
    await expect.poll(() => sched.calls.length, { timeout: 5_000 }).toBe(2);
    await expect.poll(() => sched.halfClosed.has(sched.calls[0]!)).toBe(true);
    await expect((await onStream("next")).answer).resolves.toEqual({ runId: "run-next", existing: false });
    expect(sched.received.find((r) => r.req.submit?.app === "next")?.call).toBe(sched.calls[1]);
    const first = sched.received.find((r) => r.req.submit?.app === "held")!;
    first.call.write({ id: first.req.id, result: accepted(first.req) });
    await expect(held).resolves.toEqual({ runId: "run-held", existing: false });
  });

  it("spreads its streams over the copies of an address list, one each", async () => {
    const servers: GrpcServer[] = [];
    const opened: number[] = [];
    try {
      const ports: number[] = [];
      for (let i = 0; i < 2; i++) {
        const srv = createGrpcServer({ log, address: "127.0.0.1:0", internalToken: TOKEN });
        srv.add(
          schedulerPb.SchedulerInternalServiceService,
          {
            submitRuns(call: ServerCall) {
              opened.push(i);
              call.sendMetadata(new Metadata());
              call.on("data", (req: schedulerPb.SubmitRunsRequest) => call.write({ id: req.id, result: { $case: "submitted", value: { runId: `copy-${i}`, existing: false } } }));
              call.on("end", () => call.end());
            },
          } as never,
          { internal: true },
        );
        servers.push(srv);
        ports.push(await srv.start());
      }
      client = createClient(schedulerPb.SchedulerInternalServiceClient, ports.map((p) => `127.0.0.1:${p}`).join(","));
      const c = client;
      // The channel is up on both copies before the streams open, as the gateway's is after its first calls.
      await new Promise<void>((resolve, reject) => c.waitForReady(Date.now() + 5_000, (err) => (err ? reject(err) : resolve())));
      await new Promise((r) => setTimeout(r, 200));
      streams = createSubmitStreams({ open: () => c.submitRuns(internalMetadata(TOKEN)), channel: c.getChannel(), streams: 2, log, maxAgeMs: 600_000 });
      const copies = new Set<string>();
      for (let i = 0; i < 10; i++) copies.add((await (await onStream(`s${i}`)).answer).runId);
      expect([...copies].sort()).toEqual(["copy-0", "copy-1"]);
    } finally {
      streams?.close();
      streams = undefined;
      for (const srv of servers) await srv.stop(100);
    }
  });

  it("close() fails what is in flight as unavailable and opens nothing more", async () => {
    await start(() => undefined);
    const a = (await onStream("a")).answer;
    streams!.close();
    await expect(a).rejects.toMatchObject({ code: "unavailable" });
    expect(streams!.submit("Bearer key", request("b"), 1000)).toBeUndefined();
  });
});
