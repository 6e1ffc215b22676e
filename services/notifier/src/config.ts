import { commonEnvSchema, schemaEnvSchema, envBool, envInt, parseEnv, z } from "@longhaul/shared/config";

/**
 * A comma-separated list of delays in seconds, each counted from the end of
 * the previous attempt; the list's length is the number of attempts.
 */
const retrySchedule = z
  .string()
  .default("0,5,300,1800,7200,18000,36000,36000")
  .transform((raw, ctx) => {
    const parts = raw.split(",").map((p) => p.trim());
    const delays = parts.map(Number);
    if (parts.length === 0 || parts.length > 50 || delays.some((d, i) => parts[i] === "" || !Number.isFinite(d) || d < 0)) {
      ctx.addIssue({ code: "custom", message: "comma-separated seconds >= 0, 1 to 50 of them" });
      return z.NEVER;
    }
    return delays;
  });

/** The notifier's environment. */
export const notifierEnvSchema = commonEnvSchema.extend(schemaEnvSchema.shape).extend({
  /** Address the gRPC server binds. @default "0.0.0.0" */
  NOTIFIER_GRPC_HOST: z.string().default("0.0.0.0"),
  /** Port of the gRPC server (NotifierInternalService, health, reflection). @default 50053 */
  NOTIFIER_GRPC_PORT: envInt(50053, 0, 65535),
  /** Address of the `/metrics` server. @default "0.0.0.0" */
  NOTIFIER_METRICS_HOST: z.string().default("0.0.0.0"),
  /** Port of the `/metrics` server. @default 9463 */
  NOTIFIER_METRICS_PORT: envInt(9463, 0, 65535),
  /** Let webhooks reach loopback, private and link-local addresses (local development). @default false */
  LONGHAUL_WEBHOOK_ALLOW_PRIVATE: envBool(false),
  /**
   * Seconds to wait before each attempt, after the previous one; each delay
   * gets ±10 % jitter. @default "0,5,300,1800,7200,18000,36000,36000" (8 attempts over ~27.6 h)
   */
  NOTIFIER_RETRY_SCHEDULE: retrySchedule,
  /** Seconds one attempt may take, connect to last byte read. @default 15 */
  NOTIFIER_ATTEMPT_TIMEOUT_SECONDS: envInt(15, 1, 300),
  /** Bytes of the receiver's answer read before the connection is dropped. @default 65536 */
  NOTIFIER_MAX_RESPONSE_BYTES: envInt(64 * 1024, 0, 16 * 1024 * 1024),
  /** App bodies larger than this are not POSTed inline; a signed result URL is sent instead. @default 262144 */
  NOTIFIER_MAX_INLINE_BYTES: envInt(256 * 1024, 0, 16 * 1024 * 1024),
  /** Public base URL of the gateway, the base of result URLs. @default "http://127.0.0.1:8080" */
  LONGHAUL_PUBLIC_URL: z.url().default("http://127.0.0.1:8080"),
  /** Seconds a result URL sent in a webhook stays valid. @default 604800 (7 days) */
  NOTIFIER_RESULT_URL_TTL_SECONDS: envInt(7 * 24 * 3600, 60),
  /** Milliseconds between two looks for due deliveries. @default 1000 */
  NOTIFIER_POLL_MS: envInt(1000, 10, 60_000),
  /** Longest pause between looks while they find nothing due (a retry scheduled here wakes it in time). @default 5000 */
  NOTIFIER_IDLE_POLL_MS: envInt(5000, 10, 600_000),
  /**
   * Attempts one notifier runs at once; more due deliveries wait for the next
   * poll. A slot is held from the POST until its record commits (a window of
   * 20 ms): at 64 a notifier sent at most ~600 webhooks a second before
   * deliveries went the poller's dearer way. @default 256
   */
  NOTIFIER_MAX_CONCURRENCY: envInt(256, 1, 10_000),
  /** Seconds the previous secret still signs after a rotation. @default 86400 */
  NOTIFIER_SECRET_OVERLAP_SECONDS: envInt(86_400, 0),
  /** Settled deliveries (and their attempts) are deleted this long after their last change, as runs are. @default 30 */
  LONGHAUL_RUN_RETENTION_DAYS: envInt(30, 1, 36_500),
  /** Seconds between two deletions of old deliveries; one with nothing to delete is one index-only statement. @default 300 */
  NOTIFIER_RETENTION_INTERVAL_SECONDS: envInt(300, 1, 86_400),
  /** Deadline of each call to the scheduler, in milliseconds. @default 5000 */
  NOTIFIER_RPC_TIMEOUT_MS: envInt(5_000, 100, 60_000),
});

export type NotifierConfig = Readonly<z.infer<typeof notifierEnvSchema>>;

/** Parses the environment once at start; the only reader of process.env. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): NotifierConfig {
  return parseEnv(notifierEnvSchema, env);
}
