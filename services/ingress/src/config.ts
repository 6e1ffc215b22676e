import { commonEnvSchema, envBool, envInt, parseEnv, z } from "@longhaul/shared/config";

/**
 * The ingress's environment. This file is the only reader of `process.env`
 * (it is handed in by main.ts); everything else gets the frozen result.
 */
export const ingressEnvSchema = commonEnvSchema.extend({
  /** Address the HTTP gateway binds. @default "0.0.0.0" */
  LONGHAUL_HTTP_HOST: z.string().default("0.0.0.0"),
  /** Port of the HTTP gateway (gateway, `/v1`, `/dashboard`, `/healthz`). @default 8080 */
  LONGHAUL_HTTP_PORT: envInt(8080, 0, 65_535),
  /** Address of the `/metrics` server, apart from the public port. @default "0.0.0.0" */
  INGRESS_METRICS_HOST: z.string().default("0.0.0.0"),
  /** Port of the `/metrics` server (the public port answers 404 there). @default 9460 */
  INGRESS_METRICS_PORT: envInt(9460, 0, 65_535),
  /**
   * Largest request body an async call may carry; a larger one is answered
   * 413 and nothing is stored. Also caps JSON bodies of the control API.
   * @default 10485760 (10 MiB)
   */
  LONGHAUL_MAX_BODY_BYTES: envInt(10 * 1024 * 1024, 1),
  /**
   * Base URL clients reach the gateway at, used in absolute links (the
   * dashboard, printed URLs). Empty: links stay relative. @default ""
   */
  LONGHAUL_PUBLIC_URL: z.union([z.literal(""), z.url()]).default(""),
  /**
   * Seconds an API key's project (or its rejection) is cached; at most 2, so
   * that a revoked key is refused within 5 s (the scheduler caches 2 s too).
   * 0 turns the cache off. @default 2
   */
  INGRESS_AUTH_CACHE_SECONDS: envInt(2, 0, 2),
  /** Seconds between SSE heartbeat comments on `/v1/runs/{id}/events`. @default 15 */
  INGRESS_SSE_HEARTBEAT_SECONDS: envInt(15, 1, 300),
  /**
   * Longest one SSE stream stays open; then it ends and EventSource clients
   * reconnect (every gRPC call needs a deadline, and runs may wait for hours).
   * @default 3600
   */
  INGRESS_SSE_MAX_SECONDS: envInt(3600, 10, 86_400),
  /**
   * Runs a project feed (`GET /v1/events`, the dashboard's live table) may
   * name with `run=`: their current state is sent first, so a client catches
   * up on what changed before the feed listened (the dashboard names the
   * unfinished runs of its page of 25). At most 1000 (RunService/WatchRuns'
   * limit). @default 50
   */
  INGRESS_EVENTS_MAX_WATCHED: envInt(50, 1, 1000),
  /** Serve the dashboard at `/dashboard`. @default true */
  INGRESS_DASHBOARD_ENABLED: envBool(true),
  /**
   * SchedulerInternalService/SubmitRuns streams the gateway keeps open for
   * async submits (each submit a message, not a call); `0` sends every
   * submit as a unary RunService/SubmitRun call. `auto`: one per address of
   * `SCHEDULER_ADDR`, two when it is one DNS name. @default "auto"
   */
  INGRESS_SUBMIT_STREAMS: z.union([z.literal("auto"), z.coerce.number().int().min(0).max(64)]).default("auto"),
  /**
   * How long the gateway keeps an idle keep-alive connection open, in
   * milliseconds. Longer than the idle timeout of any load balancer in front
   * (60 s for most), so that the balancer, not the gateway, closes an idle
   * connection: a gateway closing first races the balancer's next request on
   * it, which the client then sees as a reset. Node's default is 5 s.
   * The time allowed for a request's headers is kept above it.
   * @default 65000
   */
  INGRESS_KEEP_ALIVE_TIMEOUT_MS: envInt(65_000, 1, 3_600_000),
  /** Grace period for in-flight requests at shutdown, in milliseconds. @default 25000 */
  INGRESS_SHUTDOWN_GRACE_MS: envInt(25_000, 0, 600_000),
});

export type IngressConfig = Readonly<z.infer<typeof ingressEnvSchema>>;

/** Parses and freezes the ingress's configuration; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv): IngressConfig {
  return parseEnv(ingressEnvSchema, env);
}
