import { commonEnvSchema, schemaEnvSchema, envBool, envInt, parseEnv, z } from "@longhaul/shared/config";
import { parseDefaultLimits } from "./core/tenancy.js";

/** The scheduler's settings; each variable is listed in the README's settings table. */
const schema = commonEnvSchema.extend(schemaEnvSchema.shape).extend({
  /** Address the gRPC server binds. @default 0.0.0.0 */
  SCHEDULER_GRPC_HOST: z.string().default("0.0.0.0"),
  /** @default 50051 */
  SCHEDULER_GRPC_PORT: envInt(50051, 0, 65535),
  SCHEDULER_METRICS_HOST: z.string().default("0.0.0.0"),
  /** @default 9461 */
  SCHEDULER_METRICS_PORT: envInt(9461, 0, 65535),
  /** How often the reconciler runs. @default 500 */
  SCHEDULER_TICK_MS: envInt(500, 50, 60_000),
  /**
   * Longest pause between reconciler passes while they find nothing to do
   * (a delayed run or a retry due sooner shortens it). @default 5000
   */
  SCHEDULER_IDLE_TICK_MS: envInt(5_000, 50, 60_000),
  /**
   * How long a submit waits for others to share its commit, only when
   * another came within as long before it (so never on a quiet system).
   * 0: each submit is written at once (still with those that queued behind
   * a commit in flight). @default 4
   */
  SCHEDULER_SUBMIT_WINDOW_MS: envInt(4, 0, 50),
  /**
   * How long a successful run's end waits for others to share its commit,
   * when another ended within 100 ms before it (so never on a quiet
   * system). The app has answered already: only the run's final state, its
   * webhook and the invoker's acknowledgement wait. 0: each end is written
   * at once. @default 20
   */
  SCHEDULER_END_WINDOW_MS: envInt(20, 0, 200),
  /**
   * A window of ends that holds fewer than eight when SCHEDULER_END_WINDOW_MS
   * is over stays open until it holds eight, up to this long in all: ends a
   * few ms apart (10-400 a second) share commits eight at a time, not two or
   * three; busier ends fill the window in time and see no change. At most
   * SCHEDULER_END_WINDOW_MS: no stretch. @default 50
   */
  SCHEDULER_END_WINDOW_MAX_MS: envInt(50, 0, 1000),
  /** An invoker's claim lasts this long unless renewed by heartbeats. @default 15 */
  SCHEDULER_LEASE_SECONDS: envInt(15, 2, 600),
  /** A dispatched run nobody claimed is republished after this. @default 15 */
  SCHEDULER_REDISPATCH_AFTER_SECONDS: envInt(15, 1, 3600),
  /** A finished run's webhook no notifier took is republished after this. @default 30 */
  SCHEDULER_WEBHOOK_REPUBLISH_SECONDS: envInt(30, 1, 3600),
  /** Largest request body stored. @default 10 MiB */
  LONGHAUL_MAX_BODY_BYTES: envInt(10 * 1024 * 1024, 0, 64 * 1024 * 1024),
  /** Submits to a concurrency-limited app answer 429 past this many queued runs. @default 100000 */
  SCHEDULER_MAX_QUEUED_PER_APP: envInt(100_000, 1),
  /** How long an Idempotency-Key keeps returning the same run. @default 86400 */
  SCHEDULER_IDEMPOTENCY_TTL_SECONDS: envInt(86_400, 60),
  /** Request and response bodies are dropped this long after a run ends. @default 7 */
  LONGHAUL_RETENTION_DAYS: envInt(7, 1, 3650),
  /** Whole runs (with their attempts and Idempotency-Keys) are deleted this long after they end. @default 30 */
  LONGHAUL_RUN_RETENTION_DAYS: envInt(30, 1, 36500),
  /** Seconds between two retention passes; a pass with nothing to delete is one index-only read. @default 300 */
  SCHEDULER_RETENTION_INTERVAL_SECONDS: envInt(300, 1, 86_400),
  LONGHAUL_WEBHOOK_ALLOW_PRIVATE: envBool(false),
  /** The development project's API key; when set, the `dev` project owns it. */
  LONGHAUL_DEV_API_KEY: z.string().min(16).optional(),
  /**
   * The operator key: the only key of the admin API (`/v1/admin/...`,
   * longhaul.v1.AdminService). Unset: the admin API answers no one.
   */
  LONGHAUL_ADMIN_KEY: z.string().min(32, "must be at least 32 characters").optional(),
  /**
   * The operator key being rotated out: accepted beside LONGHAUL_ADMIN_KEY
   * until it is unset (set the new key, move the old one here, restart, then
   * drop it once every client has the new one).
   */
  LONGHAUL_ADMIN_KEY_PREVIOUS: z.string().min(32, "must be at least 32 characters").optional(),
  /** Limits a new project starts with, JSON of the API's names (`{"submits_per_second":50}`); unset: unlimited. */
  LONGHAUL_DEFAULT_LIMITS: z
    .string()
    .default("")
    .transform((raw, ctx) => {
      try {
        return parseDefaultLimits(raw);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
        return z.NEVER;
      }
    }),
  /** More projects and keys, `project:key,project:key`. */
  LONGHAUL_API_KEYS: z.string().default(""),
  SCHEDULER_DB_POOL_SIZE: envInt(20, 1, 500),
  /** How often finished runs are folded into the overview's rollup (GET /v1/stats). @default 15 */
  SCHEDULER_STATS_ROLLUP_SECONDS: envInt(15, 1, 600),
});

export type SchedulerConfig = z.infer<typeof schema>;

export function loadConfig(env: NodeJS.ProcessEnv): Readonly<SchedulerConfig> {
  return parseEnv(schema, env);
}

/** `project:key` pairs of LONGHAUL_DEV_API_KEY and LONGHAUL_API_KEYS. */
export function projectKeys(config: SchedulerConfig): { project: string; key: string }[] {
  const pairs = config.LONGHAUL_API_KEYS.split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((pair) => {
      const at = pair.indexOf(":");
      if (at <= 0 || at === pair.length - 1) throw new Error(`LONGHAUL_API_KEYS: '${pair.slice(0, 20)}…' is not project:key`);
      return { project: pair.slice(0, at), key: pair.slice(at + 1) };
    });
  if (config.LONGHAUL_DEV_API_KEY) pairs.unshift({ project: "dev", key: config.LONGHAUL_DEV_API_KEY });
  return pairs;
}
