import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { commonEnvSchema, envInt, parseEnv, z } from "@longhaul/shared/config";
import { MAX_RUN_TIMEOUT_SECONDS } from "@longhaul/shared/domain";

/** Environment of the invoker; the only place that reads `process.env`. */
export const invokerEnvSchema = commonEnvSchema.extend({
  /** Address the gRPC server binds. @default "0.0.0.0" */
  INVOKER_GRPC_HOST: z.string().default("0.0.0.0"),
  /** Port of `longhaul.internal.v1.InvokerService`, health and reflection. @default 50052 */
  INVOKER_GRPC_PORT: envInt(50052, 0, 65535),
  /** Address `/metrics` binds. @default "0.0.0.0" */
  INVOKER_METRICS_HOST: z.string().default("0.0.0.0"),
  /** Port of `/metrics`. @default 9462 */
  INVOKER_METRICS_PORT: envInt(9462, 0, 65535),
  /**
   * Name this copy claims runs under; it must differ between copies.
   * @default `${hostname}-${pid}-${random}`
   */
  INVOKER_ID: z.string().min(1).max(200).optional(),
  /**
   * Calls held at once (async runs and sync pass-through together). At the
   * limit the invoker stops pulling dispatches (backpressure); it never fails them.
   * @default 10000
   */
  INVOKER_MAX_IN_FLIGHT: envInt(10_000, 1),
  /**
   * ClaimRun calls in flight at once; bounds the burst a dispatch backlog
   * sends to the scheduler. @default 64
   */
  INVOKER_MAX_CONCURRENT_CLAIMS: envInt(64, 1),
  /**
   * Call slots kept free for runs handed over at submit (SchedulerInternalService
   * Handoff): a run accepted while this invoker has such a slot is started for
   * it in the submit's own commit, with no dispatch message and no claim.
   * At most a quarter of INVOKER_MAX_IN_FLIGHT, so that dispatches (retries,
   * queued runs) always find slots; 0 turns handoffs off (every run comes by
   * dispatch). A credit is spent at submit and comes back only after the
   * run's commit, so submits in flight hold credits: at 400 runs/s under a
   * profiler 64 ran out and half the runs went the dearer dispatch way.
   * @default 256
   */
  INVOKER_HANDOFF_CREDITS: envInt(256, 0),
  /**
   * CompleteRun / ReleaseRun calls in flight at once; when many held calls end
   * together (an app answering thousands at once, a drain) the rest wait their
   * turn instead of racing their deadlines at the scheduler. Successes share
   * one statement per batch there (up to 200), so this must let batches fill:
   * at 16, with the scheduler's end window (20 ms), an invoker recorded at most
   * ~16 outcomes per commit, 400-550 a second. The scheduler bounds its own
   * per-run writes (pool size − 4), so heartbeats still find a connection.
   * @default 256
   */
  INVOKER_MAX_CONCURRENT_REPORTS: envInt(256, 1),
  /**
   * On SIGTERM, how long calls in flight may run on before the rest are handed
   * back (a second SIGTERM ends at once). The longest a run may take, so a
   * deploy never cuts a call. @default 43200 (12 h)
   */
  INVOKER_DRAIN_SECONDS: envInt(MAX_RUN_TIMEOUT_SECONDS, 0),
  /**
   * Outcomes that come while earlier ones are being recorded (their answers
   * awaited) wait and go to the scheduler together in one message
   * (SchedulerInternalService/Attempts): once this many ms have passed since
   * the last send, or as soon as every answer came. One wake-up of the
   * scheduler per message instead of one per outcome. An outcome that comes
   * while no answer is awaited goes at once and opens the scheduler's own end
   * window (20 to 50 ms), which the held ones mostly still make. 0: each
   * outcome goes at once.
   * @default 20
   */
  INVOKER_OUTCOME_WINDOW_MS: envInt(20, 0, 1000),
  /** Bytes of an app's response body kept for a run; the rest is read and dropped. @default 10 MiB */
  INVOKER_MAX_RESPONSE_BYTES: envInt(10 * 1024 * 1024, 0),
  /** Heartbeat period override in ms. @default lease_seconds * 1000 / 3, as the scheduler says */
  INVOKER_HEARTBEAT_MS: z.coerce.number().int().min(100).optional(),
});

export type InvokerConfig = Readonly<z.infer<typeof invokerEnvSchema>> & { invokerId: string };

/** Parses and freezes the invoker's configuration. */
export function loadConfig(env: NodeJS.ProcessEnv): InvokerConfig {
  const parsed = parseEnv(invokerEnvSchema, env);
  const invokerId = parsed.INVOKER_ID ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  return Object.freeze({ ...parsed, invokerId });
}
