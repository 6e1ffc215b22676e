// Handoff streams (SchedulerInternalService/Handoff): a run accepted while an
// invoker has credit is started for it in the submit's commit and sent down
// its stream. What a stream carried that the invoker never received is handed
// back once the invoker names that stream as ended (next hello, heartbeats),
// and never what the invoker may have sent, nor a run it claimed. The mesh's own invoker
// takes dispatches only (INVOKER_HANDOFF_CREDITS=0); the test plays the
// invoker on the stream with a real gRPC client, to lose messages on purpose.
import { status as GrpcStatus, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, internalMetadata } from "@longhaul/shared/grpc";
import { schedulerPb } from "@longhaul/shared/proto";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let api: ReturnType<typeof gateway>;
let client: schedulerPb.SchedulerInternalServiceClient;

beforeAll(async () => {
  app = await startPeer();
  mesh = await startTestMesh({ serviceEnv: { invoker: { INVOKER_HANDOFF_CREDITS: "0" } } });
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  await api.putApp("work", { url: app.url });
  client = createClient(schedulerPb.SchedulerInternalServiceClient, mesh.addresses.scheduler);
});

afterAll(async () => {
  client?.close();
  await mesh?.cleanup();
  await app?.close();
});

type Duplex = ClientDuplexStream<schedulerPb.HandoffRequest, schedulerPb.HandoffResponse>;

/** A Handoff stream the test drives as an invoker would, recording what arrives. */
function openStream() {
  const id = randomUUID();
  const call: Duplex = client.handoff(internalMetadata(mesh.internalToken));
  const runs: schedulerPb.ClaimRunResponse[] = [];
  const ended = new Promise<ServiceError | undefined>((resolve) => {
    call.on("error", (err: ServiceError) => resolve(err));
    call.on("end", () => resolve(undefined));
  });
  call.on("data", (res: schedulerPb.HandoffResponse) => res.run && runs.push(res.run));
  const send = (message: schedulerPb.HandoffRequest["message"]) => call.write({ message });
  return {
    id,
    call,
    runs,
    ended,
    send,
    hello: (invokerId: string, held: { runId: string; attempt: number }[], endedStreams: string[] = [], streamId: string = id) =>
      send({ $case: "hello", value: { invokerId, held, uptimeSeconds: 0, streamId, endedStreams } }),
    credit: (runs: number) => send({ $case: "credit", value: { runs } }),
  };
}

async function submit(tag: string): Promise<string> {
  const r = await api.call("POST", `/dev/work/job?async=true&tag=${tag}`, "x");
  expect(r.status).toBe(202);
  return r.json.run_id as string;
}

const callsOf = (id: string) => app.received.filter((x) => x.headers["x-longhaul-run-id"] === id).length;

/**
 * Opens a stream as `invokerId` with one credit and submits until a run
 * arrives on it: the stream counts credits only once its hello's repair is
 * done, so when this returns, the repair has happened. Runs submitted before
 * then went by dispatch to the mesh's invoker.
 */
async function openAndProve(invokerId: string, held: { runId: string; attempt: number }[], endedStreams: string[] = []) {
  const s = openStream();
  s.hello(invokerId, held, endedStreams);
  s.credit(1);
  const run = await eventually(async () => {
    await submit(`probe-${invokerId}`);
    return s.runs[0];
  }, 15_000, `a run on ${invokerId}'s stream`);
  return { s, run };
}

async function runOf(id: string) {
  return (await api.getRun(id)).json as { status: string; attempts: { invoker_id: string }[] };
}

describe("handoff", () => {
  it("a run started for an invoker is sent down its stream, stored running for it, in one commit with the submit", async () => {
    const { s, run } = await openAndProve("ghost-a", []);
    expect(run).toMatchObject({ attempt: 1, app: "work", leaseSeconds: expect.any(Number) });
    expect(run.url).toBe(`${app.url}/job?tag=probe-ghost-a`);
    expect(run.request?.method).toBe("POST");
    expect(Buffer.from(run.request!.body).toString()).toBe("x");
    const stored = await runOf(run.runId);
    expect(stored.status).toBe("running");
    expect(stored.attempts.map((a) => a.invoker_id)).toEqual(["ghost-a"]);
    // Nobody called the app: the stream's owner has not made the call.
    expect(callsOf(run.runId)).toBe(0);

    // The stream breaks as if the message had been lost with it; the invoker
    // opens another, naming the first as ended: the run goes back to the queue
    // and the mesh's invoker makes the call, once.
    s.call.cancel();
    await s.ended;
    const next = openStream();
    next.hello("ghost-a", [], [s.id]);
    const done = await api.finished(run.runId, 20_000);
    expect(done.status).toBe("succeeded");
    expect((done.attempts as { invoker_id: string }[]).map((a) => a.invoker_id)).not.toContain("ghost-a");
    expect(done.attempts).toHaveLength(1);
    expect(callsOf(run.runId)).toBe(1);
    next.call.cancel();
  });

  // (A run the invoker claimed is never handed back: pg-store.test.ts and scheduler-core.test.ts.)
  it("a hello never hands back what the invoker holds, nor what came on a stream it did not name", async () => {
    const first = await openAndProve("ghost-b", []);
    const held = { runId: first.run.runId, attempt: 1 };
    first.s.call.cancel();
    await first.s.ended;

    // Held: it stays the invoker's.
    const second = await openAndProve("ghost-b", [held], [first.s.id]);
    expect((await runOf(held.runId)).status).toBe("running");
    second.s.call.cancel();
    await second.s.ended;

    // Not naming the second stream: its run stays.
    const third = await openAndProve("ghost-b", [], [first.s.id]);
    expect((await runOf(second.run.runId)).status).toBe("running");
    expect(callsOf(second.run.runId)).toBe(0);
    third.s.call.cancel();
    await third.s.ended;

    // Naming them all, holding none: each handed back and called once.
    const last = openStream();
    last.hello("ghost-b", [], [first.s.id, second.s.id, third.s.id]);
    for (const id of [held.runId, second.run.runId, third.run.runId]) {
      expect((await api.finished(id, 20_000)).status).toBe("succeeded");
      expect(callsOf(id)).toBe(1);
    }
    last.call.cancel();
  });

  it("a heartbeat naming an ended stream hands back what the scheduler started on it after the hello", async () => {
    const { s, run } = await openAndProve("ghost-e", []);
    s.call.cancel();
    await s.ended;
    const res = await new Promise<schedulerPb.HeartbeatResponse>((resolve, reject) =>
      client.heartbeat({ invokerId: "ghost-e", runs: [], endedStreams: [s.id] }, internalMetadata(mesh.internalToken), (err, r) => (err ? reject(err) : resolve(r))),
    );
    expect(res.lost).toEqual([]);
    expect((await api.finished(run.runId, 20_000)).status).toBe("succeeded");
    expect(callsOf(run.runId)).toBe(1);
    // Not a UUID: refused.
    const bad = await new Promise<ServiceError | null>((resolve) =>
      client.heartbeat({ invokerId: "ghost-e", runs: [], endedStreams: ["nope"] }, internalMetadata(mesh.internalToken), (err) => resolve(err)),
    );
    expect(bad?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
  });

  it("stop ends the stream; later runs are dispatched", async () => {
    const { s } = await openAndProve("ghost-c", []);
    s.credit(5);
    s.send({ $case: "stop", value: {} });
    expect(await s.ended).toBeUndefined();
    const id = await submit("after-stop");
    const done = await api.finished(id, 20_000);
    expect(done.status).toBe("succeeded");
    expect((done.attempts as { invoker_id: string }[])[0]!.invoker_id).not.toBe("ghost-c");
    expect(s.runs).toHaveLength(1);
    // What ghost-c was given and never called: handed back by its next hello.
    const again = openStream();
    again.hello("ghost-c", [], [s.id]);
    expect((await api.finished(s.runs[0]!.runId, 20_000)).status).toBe("succeeded");
    again.call.cancel();
  });

  it("refuses a stream that does not start with a hello, a hello without an invoker id and a credit of 0", async () => {
    const noHello = openStream();
    noHello.credit(1);
    expect((await noHello.ended)?.code).toBe(GrpcStatus.INVALID_ARGUMENT);

    const noId = openStream();
    noId.hello("", []);
    expect((await noId.ended)?.code).toBe(GrpcStatus.INVALID_ARGUMENT);

    const badStream = openStream();
    badStream.hello("ghost-d", [], [], "not-a-uuid");
    expect((await badStream.ended)?.details).toMatch(/stream_id/);

    const badEnded = openStream();
    badEnded.hello("ghost-d", [], ["x"]);
    expect((await badEnded.ended)?.details).toMatch(/ended_streams/);

    const zero = openStream();
    zero.hello("ghost-d", []);
    zero.credit(0);
    const err = await zero.ended;
    expect(err?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/credit/);
  });

  it("refuses a stream without the internal token", async () => {
    const call: Duplex = client.handoff();
    const ended = new Promise<ServiceError | undefined>((resolve) => {
      call.on("error", (e: ServiceError) => resolve(e));
      call.on("end", () => resolve(undefined));
    });
    call.on("data", () => undefined);
    call.write({ message: { $case: "hello", value: { invokerId: "intruder", held: [], uptimeSeconds: 0, streamId: randomUUID(), endedStreams: [] } } });
    expect((await ended)?.code).toBe(GrpcStatus.UNAUTHENTICATED);
  });
});
