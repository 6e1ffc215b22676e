// Types of mesh.mjs, for the TypeScript tests that import it.

export type ServiceName = "scheduler" | "invoker" | "notifier" | "ingress";

export declare const repoRoot: string;
/** LONGHAUL_APP_ALLOWED_NETWORKS of a local mesh (tests, npm start): the private ranges and loopback. */
export declare const LOCAL_APP_NETWORKS: string;
export declare const SERVICE_NAMES: readonly ServiceName[];
export declare const PORT_VARS: Readonly<Record<ServiceName, readonly string[]>>;

export interface MeshOptions {
  databaseUrl: string;
  natsUrl: string;
  /** LONGHAUL_NATS_PREFIX of every service; the services' default when omitted. */
  natsPrefix?: string;
  /**
   * Extra env for every service. Port variables (e.g. LONGHAUL_HTTP_PORT) and
   * LONGHAUL_INTERNAL_TOKEN / LONGHAUL_DEV_API_KEY given here are used instead
   * of generated ones (ports: for the first copy only).
   */
  env?: Record<string, string>;
  /** Copies of each service. @default 1 each; 0 leaves a service out. */
  services?: Partial<Record<ServiceName, number>>;
  /** Extra env for every copy of one service; wins over `env`. */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** Where `<name>-<index>.log` files go. @default a fresh temp dir */
  logDir?: string;
  /** 'inherit' also prints each log line to this process's stdout. @default 'pipe' */
  stdio?: "inherit" | "pipe";
  /** How a forwarded line is printed when stdio is 'inherit'. @default `[name#index] line` */
  formatLine?: (name: ServiceName, index: number, line: string) => string;
  /**
   * Called whenever a copy's process ends; `expected` is false when it was not
   * asked to (not by kill(), stop() or a failed start): a crash.
   */
  onExit?: (name: ServiceName, index: number, result: ExitResult & { expected: boolean }) => void;
  /** Aborting stops the copies started so far and rejects startMesh. */
  signal?: AbortSignal;
  /** @default 30000 */
  readyTimeoutMs?: number;
  /**
   * Port of a copy other than the first, for one of its port variables
   * (`npm start -- --replicas` gives copy i the default + 10·i). Undefined or
   * absent: a free port.
   */
  portFor?: (name: ServiceName, index: number, portVar: string) => number | undefined;
  /** Script run for a service. @default `<repo>/services/<name>/dist/main.js` */
  entry?: (name: ServiceName) => string;
  /** Node flags before the script. @default ["--import", "@longhaul/shared/otel-register"] */
  nodeArgs?: string[];
  /**
   * The migrate command run (with `env`) before any service starts, its output
   * in `<logDir>/migrate.log`; false skips it.
   * @default `<repo>/services/migrate/dist/main.js`
   */
  migrate?: string | false;
}

export interface MeshProcess {
  name: ServiceName;
  index: number;
  /** Current pid (changes after `start`). */
  pid: number | undefined;
  alive: boolean;
  logFile: string;
  /** Port variables of this copy, e.g. `{ SCHEDULER_GRPC_PORT: 40123, SCHEDULER_METRICS_PORT: 40124 }`. */
  ports: Record<string, number>;
}

export interface ExitResult {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Mesh {
  /** `http://127.0.0.1:<port>` of the first ingress copy (undefined with 0 ingress copies). */
  ingressUrl: string;
  /** The `dev` project's key (LONGHAUL_DEV_API_KEY). */
  apiKey: string;
  /** The operator key (LONGHAUL_ADMIN_KEY) of `/v1/admin/...` and longhaul.v1.AdminService. */
  adminKey: string;
  internalToken: string;
  /**
   * Address list of each gRPC service: `127.0.0.1:<port>` of every copy,
   * comma-separated (what SCHEDULER_ADDR and its siblings are set to).
   */
  addresses: { scheduler: string; invoker: string; notifier: string };
  /** `/metrics` URLs of every copy, by service, in copy order. */
  metricsUrls: Record<ServiceName, string[]>;
  logDir: string;
  /** The wiring env every service got (URLs, tokens, addresses). */
  env: Record<string, string>;
  /** A snapshot of every copy. */
  readonly processes: MeshProcess[];
  /** Signals a copy's process group (SIGKILL after 10 s); resolves once it exited. @default index 0, SIGTERM */
  /** Signals one copy; SIGKILL if it has not exited after `graceMs` (10 s). */
  kill(name: ServiceName, index?: number, signal?: NodeJS.Signals, graceMs?: number): Promise<ExitResult>;
  /** Starts a stopped copy again with the same env and ports; resolves once it is ready. */
  start(name: ServiceName, index?: number): Promise<void>;
  /**
   * SIGTERM to every ingress, invoker and notifier at once; once they are gone,
   * to the schedulers (draining invokers report to them). A copy still running
   * `graceMs` after its SIGTERM is killed; `Infinity` waits as long as it takes.
   * Idempotent. @default graceMs 10000
   */
  stop(options?: { graceMs?: number }): Promise<void>;
  /** Everything the copy wrote so far (all its runs). */
  logs(name: ServiceName, index?: number): string;
}

export declare function startMesh(options: MeshOptions): Promise<Mesh>;
