import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  Server,
  ServerCredentials,
  ServerInterceptingCall,
  ServerListenerBuilder,
  status as GrpcStatus,
  type ServerInterceptor,
  type Metadata,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation, type ServingStatus } from "grpc-health-check";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { LonghaulError } from "../errors.js";
import { context, startServerSpan } from "../telemetry.js";
import { fromGrpcError, toServiceError } from "./errors.js";
import type { GrpcTls } from "./tls.js";

export const INTERNAL_TOKEN_METADATA_KEY = "x-longhaul-internal-token";
/**
 * Response header of an Attempts stream (SchedulerInternalService) whose
 * scheduler takes several requests in one message (AttemptsRequest.more).
 */
export const ATTEMPTS_BATCHES_METADATA_KEY = "longhaul-attempts-batches";

/** What a handler learns of its call besides the request. */
export interface CallContext {
  metadata: Metadata;
  /** Aborted when the client cancels or the deadline passes. */
  signal: AbortSignal;
}

type Handler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;

/**
 * Serializes buf's descriptors (ours and grpc.health.v1) for reflection.
 * Fed from @grpc/proto-loader instead, method listing breaks (TOOLCHAIN.md).
 */
function loadDescriptorProtos(): Buffer[] {
  const files = ["longhaul.binpb", "health.binpb"].flatMap((name) => {
    const bytes = readFileSync(new URL(`../../descriptors/${name}`, import.meta.url));
    return fromBinary(FileDescriptorSetSchema, bytes).file;
  });
  return files.map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f)));
}

/**
 * The reason of every cancelled call's signal: one instance, since grpc-js
 * reports most calls as cancelled when their stream closes, and an error
 * built per call (its stack captured) was 1.4 % of the scheduler's CPU.
 */
const CALL_CANCELLED = new LonghaulError("deadline_exceeded", "call cancelled");

function callSignal(call: { on(event: "cancelled", fn: () => void): unknown }): AbortSignal {
  const controller = new AbortController();
  call.on("cancelled", () => controller.abort(CALL_CANCELLED));
  return controller.signal;
}

function reportError(log: Logger, method: string, err: unknown): LonghaulError {
  const e = fromGrpcError(err);
  if (e.code === "internal") log.error({ err, method }, "internal error in handler");
  return e;
}

/** Options of {@link createGrpcServer}. */
export interface GrpcServerOptions {
  log: Logger;
  /** host:port to bind. */
  address: string;
  /** Required in `x-longhaul-internal-token` on the services added with `internal: true`. */
  internalToken: string;
  /** Message size limit in bytes. @default 16 MiB */
  maxMessageBytes?: number;
  /**
   * Age after which a client connection is sent GOAWAY, so that clients
   * reconnect and resolve the service's copies again (a load balancer's view of
   * new copies). Calls in flight go on. 0 or absent: never.
   */
  maxConnectionAgeMs?: number;
  /** How long calls in flight on such a connection may still run before it is cut. @default 86_400_000 */
  maxConnectionAgeGraceMs?: number;
  /** How often the server pings each client connection (keepalive). @default 30_000 */
  keepaliveTimeMs?: number;
  /** Where `grpc_server_started_total` / `grpc_server_handled_total` go; absent: not counted. */
  registry?: Registry;
  /** Serve TLS (mutual when it has a CA) with these credentials; absent: plaintext. */
  tls?: GrpcTls | undefined;
}

/**
 * Counts calls per service and method as go-grpc-prometheus names them
 * (`grpc_server_started_total`, `grpc_server_handled_total{grpc_code}`), so that
 * dashboards and alerts written for other gRPC servers read ours too.
 */
function metricsInterceptor(registry: Registry): ServerInterceptor {
  const labelNames = ["grpc_service", "grpc_method", "grpc_type"] as const;
  const started = new Counter({
    name: "grpc_server_started_total",
    help: "gRPC calls started on the server",
    labelNames,
    registers: [registry],
  });
  const handled = new Counter({
    name: "grpc_server_handled_total",
    help: "gRPC calls completed on the server, by status code",
    labelNames: [...labelNames, "grpc_code"],
    registers: [registry],
  });
  return (method, call) => {
    const [, service = "", name = ""] = method.path.split("/");
    const type = method.requestStream
      ? method.responseStream
        ? "bidi_stream"
        : "client_stream"
      : method.responseStream
        ? "server_stream"
        : "unary";
    const labels = { grpc_service: service, grpc_method: name, grpc_type: type };
    started.inc(labels);
    return new ServerInterceptingCall(call, {
      sendStatus(status, next) {
        handled.inc({ ...labels, grpc_code: GrpcStatus[status.code] ?? String(status.code) });
        next(status);
      },
    });
  };
}

/**
 * Internal services answer only calls carrying the mesh's token in
 * `x-longhaul-internal-token`, compared in constant time (over digests, so
 * that lengths do not leak either). `internalPaths`: the methods of the
 * services added with `internal: true`, filled as they are added.
 */
function internalTokenInterceptor(token: string, internalPaths: ReadonlySet<string>): ServerInterceptor {
  const expected = createHash("sha256").update(token).digest();
  const tokenMatches = (sent: unknown) => typeof sent === "string" && timingSafeEqual(createHash("sha256").update(sent).digest(), expected);
  return (method, call) => {
    if (!internalPaths.has(method.path)) return new ServerInterceptingCall(call);
    return new ServerInterceptingCall(call, {
      start(next) {
        next(
          new ServerListenerBuilder()
            .withOnReceiveMetadata((metadata, mdNext) => {
              if (tokenMatches(metadata.get(INTERNAL_TOKEN_METADATA_KEY)[0])) return mdNext(metadata);
              const err = toServiceError(new LonghaulError("unauthenticated", "internal RPC"));
              call.sendStatus({ code: err.code!, details: err.details!, metadata: err.metadata! });
            })
            .build(),
        );
      },
    });
  };
}

/** A gRPC server with reflection, health and error mapping already wired. */
export interface GrpcServer {
  server: Server;
  /** Adds a service; handlers are built with {@link unary} and {@link serverStream}. */
  add(definition: ServiceDefinition, impl: UntypedServiceImplementation, opts?: { internal?: boolean }): void;
  /** Sets the overall health ("" service) and each added service's. */
  setServing(serving: boolean): void;
  start(): Promise<number>;
  stop(graceMs: number): Promise<void>;
}

/** The connection-age options of {@link createGrpcServer} from the common config's seconds. */
export function connectionAgeOptions(config: {
  GRPC_MAX_CONNECTION_AGE_SECONDS: number;
  GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS: number;
}): Pick<GrpcServerOptions, "maxConnectionAgeMs" | "maxConnectionAgeGraceMs"> {
  return {
    maxConnectionAgeMs: config.GRPC_MAX_CONNECTION_AGE_SECONDS * 1000,
    maxConnectionAgeGraceMs: config.GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS * 1000,
  };
}

export function createGrpcServer(options: GrpcServerOptions): GrpcServer {
  const maxBytes = options.maxMessageBytes ?? 16 * 1024 * 1024;
  const internalPaths = new Set<string>();
  const server = new Server({
    "grpc.max_receive_message_length": maxBytes,
    "grpc.max_send_message_length": maxBytes,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.http2.min_ping_interval_without_data_ms": 10_000,
    // The server pings too: a stream whose client vanished (a long-lived
    // Handoff stream, a watch) is found dead within ~40 s, not 2 h.
    "grpc.keepalive_time_ms": options.keepaliveTimeMs ?? 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    ...(options.maxConnectionAgeMs
      ? {
          "grpc.max_connection_age_ms": options.maxConnectionAgeMs,
          "grpc.max_connection_age_grace_ms": options.maxConnectionAgeGraceMs ?? 86_400_000,
        }
      : {}),
    // Each passes messages and metadata on at once: coalesceWrites relies on it.
    interceptors: [...(options.registry ? [metricsInterceptor(options.registry)] : []), internalTokenInterceptor(options.internalToken, internalPaths)],
  });
  const health = new HealthImplementation({ "": "NOT_SERVING" });
  health.addToServer(server);
  const serviceNames: string[] = [];

  const add: GrpcServer["add"] = (definition, impl, opts = {}) => {
    const first = Object.values(definition)[0];
    const name = first?.path.split("/")[1];
    if (name) serviceNames.push(name);
    if (opts.internal) for (const m of Object.values(definition)) internalPaths.add(m.path);
    server.addService(definition, impl);
  };

  const setServing = (serving: boolean) => {
    const status: ServingStatus = serving ? "SERVING" : "NOT_SERVING";
    health.setStatus("", status);
    for (const n of serviceNames) health.setStatus(n, status);
  };

  return {
    server,
    add,
    setServing,
    start: () =>
      new Promise<number>((resolve, reject) => {
        // List only what this server serves (plus health and reflection itself).
        new ReflectionService({ longhaul: { fileDescriptorProtos: loadDescriptorProtos() } } as never, {
          services: [...serviceNames, "grpc.health.v1.Health"],
        }).addToServer(server);
        server.bindAsync(options.address, options.tls?.server ?? ServerCredentials.createInsecure(), (err, port) =>
          err ? reject(err) : resolve(port),
        );
      }),
    stop: (graceMs) =>
      new Promise<void>((resolve) => {
        setServing(false);
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

/**
 * Runs `fn` in the call's own server span, under the caller's trace context
 * from its metadata, when no instrumentation does that (no exporter: see
 * startServerSpan in @longhaul/shared/telemetry).
 */
export function inServerSpan<T>(method: string, metadata: Metadata, fn: () => Promise<T>): Promise<T> {
  const server = startServerSpan(method, (name) => {
    const value = metadata.get(name)[0];
    return typeof value === "string" ? value : undefined;
  });
  if (!server) return fn();
  return context.with(server.context, fn).finally(() => server.span.end());
}

/** Builds a unary handler from an async function; errors map to gRPC statuses once, here. */
export function unary<Req, Res>(log: Logger, method: string, fn: Handler<Req, Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    inServerSpan(method, call.metadata, () => fn(call.request, { metadata: call.metadata, signal: callSignal(call) })).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toServiceError(reportError(log, method, err)) as never, null),
    );
  };
}

/** Builds a server-streaming handler; `write` sends one message. */
export function serverStream<Req, Res>(
  log: Logger,
  method: string,
  fn: (request: Req, ctx: CallContext, write: (msg: Res) => void) => Promise<void>,
) {
  return (call: ServerWritableStream<Req, Res>): void => {
    const signal = callSignal(call);
    inServerSpan(method, call.metadata, () =>
      fn(call.request, { metadata: call.metadata, signal }, (msg) => {
        if (!signal.aborted) call.write(msg);
      }),
    ).then(
      () => call.end(),
      (err: unknown) => {
        if (signal.aborted) return;
        call.emit("error", toServiceError(reportError(log, method, err)));
      },
    );
  };
}
