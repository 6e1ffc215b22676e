import { Metadata, type sendUnaryData, type ServerDuplexStream, type ServerUnaryCall } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import { createGrpcServer, type GrpcServer } from "@longhaul/shared/grpc";
import { createLogger } from "@longhaul/shared/logger";
import { runsPb, schedulerPb } from "@longhaul/shared/proto";
import { createSchedulerClients, type SchedulerClients } from "./scheduler-client.js";

// The gateway's scheduler clients against a real gRPC server that plays the
// scheduler: SubmitRuns streams that hold every message, and a unary SubmitRun.
const TOKEN = "scheduler-client-test";
const log = createLogger("scheduler-client-test", "silent");

type ServerCall = ServerDuplexStream<schedulerPb.SubmitRunsRequest, schedulerPb.SubmitRunsResponse>;

let server: GrpcServer | undefined;
let clients: SchedulerClients | undefined;
afterEach(async () => {
  clients?.close();
  await server?.stop(100);
  server = clients = undefined;
});

describe("scheduler clients", () => {
  it("a submit whose stream is failed by close() ends unavailable (a 503), never internal", async () => {
    const held: schedulerPb.SubmitRunsRequest[] = [];
    server = createGrpcServer({ log, address: "127.0.0.1:0", internalToken: TOKEN });
    server.add(
      schedulerPb.SchedulerInternalServiceService,
      {
        submitRuns(call: ServerCall) {
          call.sendMetadata(new Metadata());
          call.on("data", (req: schedulerPb.SubmitRunsRequest) => held.push(req));
        },
      } as never,
      { internal: true },
    );
    server.add(runsPb.RunServiceService, {
      submitRun(call: ServerUnaryCall<runsPb.SubmitRunRequest, runsPb.SubmitRunResponse>, done: sendUnaryData<runsPb.SubmitRunResponse>) {
        done(null, { runId: call.request.runId, existing: false });
      },
    } as never);
    const port = await server.start();
    clients = createSchedulerClients(`127.0.0.1:${port}`, TOKEN, { log, submitStreams: 1 });
    const caller = { authorization: "Bearer k", project: "p", scopes: [] } as unknown as Parameters<SchedulerClients["runs"]["submitRun"]>[0];
    const req = (path: string) => runsPb.SubmitRunRequest.fromPartial({ app: "a", request: { method: "POST", path } });
    // The first submits go by the unary call while the stream opens; then one is held on it.
    let pending: Promise<unknown> | undefined;
    for (let i = 0; i < 100 && !pending; i++) {
      const before = held.length;
      const p = clients.runs.submitRun(caller, req(`/s${i}`)).catch((e: unknown) => e);
      await Promise.race([p, new Promise((r) => setTimeout(r, 50))]);
      if (held.length > before) pending = p;
    }
    if (!pending) throw new Error("no submit went on the stream");
    clients.close();
    const err = await pending;
    expect(err).toBeInstanceOf(LonghaulError);
    expect(err).toMatchObject({ code: "unavailable" });
    // And after close, a submit is refused the same way.
    await expect(clients.runs.submitRun(caller, req("/late"))).rejects.toMatchObject({ code: "unavailable" });
  });
});
