/**
 * A real grpc-js server implementing SchedulerInternalService from memory,
 * for the invoker's edge tests (the real scheduler is tested end to end).
 */
import { LonghaulError } from "@longhaul/shared/errors";
import { createLogger } from "@longhaul/shared/logger";
import { createGrpcServer, unary, type GrpcServer } from "@longhaul/shared/grpc";
import { schedulerPb } from "@longhaul/shared/proto";

export interface FakeRun {
  runId: string;
  attempt: number;
  url: string;
  method?: string;
  /** ms from the claim to the deadline. @default 60000 */
  timeoutMs?: number;
  claimedBy?: string;
  /** The submit's trace context, handed back by ClaimRun. */
  traceparent?: string;
}

export class FakeSchedulerServer {
  readonly runs = new Map<string, FakeRun>();
  /** Each ClaimRun, with the `traceparent` its gRPC metadata carried. */
  readonly claims: Array<{ runId: string; attempt: number; at: number; traceparent: string }> = [];
  readonly completions: schedulerPb.CompleteRunRequest[] = [];
  readonly releases: schedulerPb.ReleaseRunRequest[] = [];
  readonly heartbeats: schedulerPb.HeartbeatRequest[] = [];
  /** ClaimRun answers UNAVAILABLE this many more times. */
  claimUnavailable = 0;
  /** Runs the next heartbeats name as lost. */
  lost = new Set<string>();
  leaseSeconds = 30;
  address = "";
  private server: GrpcServer | undefined;

  constructor(private readonly token: string) {}

  add(run: FakeRun): void {
    this.runs.set(run.runId, run);
  }

  async start(): Promise<string> {
    const log = createLogger("fake-scheduler", "silent");
    this.server = createGrpcServer({ log, address: "127.0.0.1:0", internalToken: this.token });
    const impl: Partial<Record<keyof schedulerPb.SchedulerInternalServiceServer, unknown>> = {
      claimRun: unary(log, "ClaimRun", async (req: schedulerPb.ClaimRunRequest, ctx) => {
        const traceparent = String(ctx.metadata.get("traceparent")[0] ?? "");
        this.claims.push({ runId: req.runId, attempt: req.attempt, at: Date.now(), traceparent });
        if (this.claimUnavailable > 0) {
          this.claimUnavailable -= 1;
          throw new LonghaulError("unavailable", "scheduler busy");
        }
        const run = this.runs.get(req.runId);
        if (!run) throw new LonghaulError("not_found", "run not found");
        if (run.attempt !== req.attempt || run.claimedBy) throw new LonghaulError("conflict", "not claimable");
        run.claimedBy = req.invokerId;
        return schedulerPb.ClaimRunResponse.fromPartial({
          runId: run.runId,
          attempt: run.attempt,
          project: "dev",
          app: "echo",
          url: run.url,
          request: { method: run.method ?? "POST", path: "/", query: "", headers: [], body: Buffer.from("payload") },
          deadline: new Date(Date.now() + (run.timeoutMs ?? 60_000)),
          leaseSeconds: this.leaseSeconds,
          traceparent: run.traceparent ?? "",
        });
      }),
      heartbeat: unary(log, "Heartbeat", async (req: schedulerPb.HeartbeatRequest) => {
        this.heartbeats.push(req);
        const lost = req.runs.filter((r) => this.lost.has(r.runId));
        return schedulerPb.HeartbeatResponse.fromPartial({ lost, leaseSeconds: this.leaseSeconds });
      }),
      completeRun: unary(log, "CompleteRun", async (req: schedulerPb.CompleteRunRequest) => {
        this.completions.push(req);
        return schedulerPb.CompleteRunResponse.fromPartial({ accepted: true });
      }),
      releaseRun: unary(log, "ReleaseRun", async (req: schedulerPb.ReleaseRunRequest) => {
        this.releases.push(req);
        const run = this.runs.get(req.runId);
        if (run) run.claimedBy = undefined;
        return schedulerPb.ReleaseRunResponse.fromPartial({ accepted: true });
      }),
      recordSyncRun: unary(log, "RecordSyncRun", async () => schedulerPb.RecordSyncRunResponse.fromPartial({ runId: "s" })),
    };
    this.server.add(schedulerPb.SchedulerInternalServiceService, impl as never, { internal: true });
    const port = await this.server.start();
    this.address = `127.0.0.1:${port}`;
    return this.address;
  }

  async stop(): Promise<void> {
    await this.server?.stop(500);
  }
}
