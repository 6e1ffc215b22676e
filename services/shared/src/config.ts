import { z } from "zod";
import { grpcTarget } from "./grpc/targets.js";
import { grpcTlsFiles, readGrpcTlsFiles } from "./grpc/tls-files.js";
import { DEFAULT_APP_NETWORKS, parseNetworks } from "./egress.js";

export { z };

/**
 * zod helper: an address list of a peer service (`host:port`, several of them
 * comma-separated, or one DNS name of every copy), checked as grpcTarget reads it.
 */
export const envAddressList = (def: string) =>
  z
    .string()
    .default(def)
    .superRefine((value, ctx) => {
      try {
        grpcTarget(value);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
      }
    });

/** zod helper: a file path; an empty value (`VAR=` in a Compose file) counts as unset. */
const envPath = () =>
  z
    .string()
    .optional()
    .transform((v) => v || undefined);

/** Environment variables every service reads. */
export const commonEnvSchema = z.object({
  DATABASE_URL: z.string().default("postgres://postgres@127.0.0.1:5432/longhaul"),
  NATS_URL: z.string().default("nats://127.0.0.1:4222"),
  /** Prefix of every JetStream stream and subject; lets meshes (and tests) share one server. */
  LONGHAUL_NATS_PREFIX: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,30}$/, "lowercase letters, digits and _")
    .default("longhaul"),
  /**
   * Replicas of each JetStream stream the services create (1 on a single
   * server; 3 on the 3-node cluster of deploy/k8s).
   * @default 1
   */
  LONGHAUL_NATS_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  /**
   * Bytes the `EVENTS` stream (run.finished) keeps before it drops the oldest
   * event; what a notifier never read is republished from Postgres.
   * @default 1073741824 (1 GiB)
   */
  LONGHAUL_EVENTS_MAX_BYTES: z.coerce.number().int().min(1024 * 1024).default(1024 * 1024 * 1024),
  /** Seconds the `EVENTS` stream keeps an event. @default 86400 */
  LONGHAUL_EVENTS_MAX_AGE_SECONDS: z.coerce.number().int().min(60).max(365 * 86_400).default(86_400),
  /**
   * Largest event `EVENTS` takes: a run.finished carries an answer of up to
   * 64 KiB inline (base64, about 88 KiB), hence at least 128 KiB; at most the
   * NATS server's max_payload (1 MiB by default). @default 262144
   */
  LONGHAUL_EVENTS_MAX_MSG_BYTES: z.coerce.number().int().min(128 * 1024).max(64 * 1024 * 1024).default(256 * 1024),
  /** Shared by the services of one mesh; required on every internal RPC. */
  LONGHAUL_INTERNAL_TOKEN: z.string().min(16, "at least 16 characters"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /**
   * Where the copies of each service are: `host:port`, a comma-separated list
   * (`127.0.0.1:50051,127.0.0.1:50061`), or one DNS name that resolves to every
   * copy (a Kubernetes headless Service). Calls are spread round-robin.
   */
  SCHEDULER_ADDR: envAddressList("127.0.0.1:50051"),
  INVOKER_ADDR: envAddressList("127.0.0.1:50052"),
  NOTIFIER_ADDR: envAddressList("127.0.0.1:50053"),
  /**
   * A gRPC server closes each client connection after this many seconds
   * (GOAWAY; calls in flight go on), so clients resolve again and spread over
   * copies started since. 0 keeps connections forever. @default 300
   */
  GRPC_MAX_CONNECTION_AGE_SECONDS: z.coerce.number().int().min(0).max(86_400 * 30).default(300),
  /**
   * How long a closing connection's open calls may still run before they are
   * cut: longer than the longest call (a sync pass-through may last 12 h; watch
   * streams end on their deadline). @default 86400
   */
  GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS: z.coerce.number().int().min(0).max(86_400 * 30).default(86_400),
  /**
   * Path of a PEM certificate (chain): every gRPC server of the service serves
   * TLS with it and every gRPC client presents it. Set with
   * LONGHAUL_GRPC_TLS_KEY, or neither (plaintext). @default unset
   */
  LONGHAUL_GRPC_TLS_CERT: envPath(),
  /** Path of the PEM private key of LONGHAUL_GRPC_TLS_CERT. @default unset */
  LONGHAUL_GRPC_TLS_KEY: envPath(),
  /**
   * Path of a PEM CA bundle: clients verify servers against it (unset: Node's
   * default roots) and servers require client certificates it signed (mutual
   * TLS). @default unset
   */
  LONGHAUL_GRPC_TLS_CA: envPath(),
  /** How often the TLS files are read again (a renewed certificate is used without a restart); 0: never. @default 60 */
  LONGHAUL_GRPC_TLS_RELOAD_SECONDS: z.coerce.number().int().min(0).max(86_400).default(60),
  /**
   * CIDR networks of special-purpose addresses an app URL may reach (public
   * addresses always may; link-local and metadata never). @default the
   * private ranges (RFC 1918, RFC 4193), not loopback
   */
  LONGHAUL_APP_ALLOWED_NETWORKS: z
    .string()
    .default(DEFAULT_APP_NETWORKS)
    .superRefine((value, ctx) => {
      try {
        parseNetworks(value);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
      }
    }),
  /**
   * More `host:port` addresses of the mesh that are never an app (metrics
   * ports, the gateway), comma-separated; DATABASE_URL, NATS_URL and the
   * *_ADDR lists are always. @default ""
   */
  LONGHAUL_MESH_ADDRESSES: z.string().default(""),
});

/** The egress policy's view of a service's config: the networks allowed and where Longhaul itself is. */
export function ownAddresses(config: CommonConfig, more: string[] = []) {
  return {
    urls: [config.DATABASE_URL, config.NATS_URL],
    hostPorts: [config.SCHEDULER_ADDR, config.INVOKER_ADDR, config.NOTIFIER_ADDR, config.LONGHAUL_MESH_ADDRESSES, ...more],
  };
}

export type CommonConfig = z.infer<typeof commonEnvSchema>;

/** Thrown at start when the environment does not fit a service's schema. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/**
 * Parses the environment once at start into a frozen, typed config. Every
 * invalid variable is named in one error.
 */
export function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): Readonly<z.infer<S>> {
  const result = schema.safeParse(env);
  const lines = result.success
    ? crossChecks(result.data as Record<string, unknown>)
    : result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  if (lines.length > 0) throw new ConfigError(`invalid configuration:\n${lines.map((l) => `  ${l}`).join("\n")}`);
  return Object.freeze(result.data as z.infer<S>);
}

/**
 * Checks that span several variables or reach outside the environment, run
 * once the schema parsed: the gRPC TLS files must come as a pair and be
 * readable PEM (a service that would fail its first handshake does not start).
 * Each message starts with the variable at fault. A schema without the TLS
 * variables (the migrate command's) has none of them in its output.
 */
function crossChecks(data: Record<string, unknown>): string[] {
  try {
    const files = grpcTlsFiles(data as { LONGHAUL_GRPC_TLS_CERT?: string; LONGHAUL_GRPC_TLS_KEY?: string; LONGHAUL_GRPC_TLS_CA?: string });
    if (files) readGrpcTlsFiles(files);
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}

/** zod helper: an integer read from an environment string. */
export const envInt = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max).default(def);

/** zod helper: a boolean read from "true" / "false". */
export const envBool = (def: boolean) =>
  z
    .enum(["true", "false", "1", "0"])
    .default(def ? "true" : "false")
    .transform((v) => v === "true" || v === "1");

/**
 * Settings of a service that owns tables (scheduler, notifier): how its schema
 * gets migrated. By default a service does not migrate: the migrate command
 * (`npm run migrate`, `longhaul-migrate` in the image, the Kubernetes Job)
 * does, and a service waits for it.
 */
export const schemaEnvSchema = z.object({
  /**
   * Apply pending migrations at start (under Kysely's migration lock), as
   * releases before 0.2 always did. Off: the service waits for the migrate
   * command instead. @default false
   */
  LONGHAUL_MIGRATE_AT_START: envBool(false),
  /**
   * With LONGHAUL_MIGRATE_AT_START (and in the migrate command): create the
   * database of DATABASE_URL when missing, connecting to the `postgres`
   * database to do so. Turn off where that database cannot be reached or the
   * role may not create databases. @default true
   */
  LONGHAUL_ENSURE_DATABASE: envBool(true),
  /**
   * How long a service that does not migrate waits at start for the migrations
   * it needs before it exits with an error. @default 600
   */
  LONGHAUL_MIGRATION_WAIT_SECONDS: envInt(600, 0, 86_400),
  /**
   * Run the hot path's statements as named prepared statements (parsed and
   * planned once per connection). Turn off behind a pooler that cannot keep
   * them (PgBouncer in transaction mode before 1.21). @default true
   */
  LONGHAUL_PG_PREPARED_STATEMENTS: envBool(true),
});

export type SchemaConfig = z.infer<typeof schemaEnvSchema>;
