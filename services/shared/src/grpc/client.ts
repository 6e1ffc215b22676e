import {
  Metadata,
  credentials,
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientUnaryCall,
  type ServiceError,
} from "@grpc/grpc-js";
import { LonghaulError } from "../errors.js";
import { fromGrpcError } from "./errors.js";
import { grpcTarget } from "./targets.js";
import { INTERNAL_TOKEN_METADATA_KEY } from "./server.js";
import type { GrpcTls } from "./tls.js";
import { injectTrace } from "../telemetry.js";

type ClientCtor<C> = new (address: string, creds: ChannelCredentials, options?: Partial<ChannelOptions>) => C;

/** Channel options every client of the mesh uses: keepalive and generous message sizes. */
export const channelOptions: Partial<ChannelOptions> = {
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.max_receive_message_length": 16 * 1024 * 1024,
  "grpc.max_send_message_length": 16 * 1024 * 1024,
  // grpc-js backs off reconnects up to 120 s by default, and calls fail fast
  // meanwhile: a peer back after a restart would stay "unavailable" for
  // minutes. Peers of the mesh are near and a connect attempt is cheap; an
  // invoker must be able to heartbeat again within a second of its scheduler's
  // return, well inside the lease.
  "grpc.initial_reconnect_backoff_ms": 200,
  "grpc.max_reconnect_backoff_ms": 1_000,
  // The service config is ours (below), never read from DNS TXT records.
  "grpc.service_config_disable_resolution": 1,
  // A lost copy makes the channel resolve its name again (a new pod's address);
  // grpc-js waits 30 s between resolutions by default.
  "grpc.dns_min_time_between_resolutions_ms": 5_000,
};

/** Options of {@link createClient}. */
export interface ClientOptions {
  /**
   * Methods (`/package.Service/Method`, a generated definition's `path`) that
   * are safe to send again: reads and writes fenced on the server. A call of
   * one of them that fails UNAVAILABLE (its copy died or refused it) is tried
   * again, on another copy when there is one. Never list a method whose second
   * call could do the work twice. @default []
   */
  retry?: readonly string[];
  /**
   * Connect with TLS: verify the server against the CA of these credentials
   * (Node's default roots without one) and present the service's certificate.
   * Absent: plaintext.
   */
  tls?: GrpcTls | undefined;
}

/**
 * The gRPC service config of a mesh channel: `round_robin` over every address
 * the target resolves to (grpc/doc/load-balancing.md: the default,
 * pick_first, sends everything to one copy), plus a retry policy for the
 * methods named in `retry` (gRFC A6, client retries).
 */
export function serviceConfig(retry: readonly string[] = []): object {
  const names = retry.map((path) => {
    const m = /^\/([^/]+)\/([^/]+)$/.exec(path);
    if (!m) throw new Error(`not a gRPC method path: ${path}`);
    return { service: m[1], method: m[2] };
  });
  return {
    loadBalancingConfig: [{ round_robin: {} }],
    methodConfig:
      names.length === 0
        ? []
        : [
            {
              name: names,
              retryPolicy: {
                maxAttempts: 3,
                initialBackoff: "0.1s",
                maxBackoff: "1s",
                backoffMultiplier: 2,
                retryableStatusCodes: ["UNAVAILABLE"],
              },
            },
          ],
  };
}

/**
 * Creates a client of a generated service for an address list (`host:port`,
 * a comma-separated list of them, or one DNS name that resolves to every copy;
 * see {@link grpcTarget}), with calls spread over the copies; plaintext unless
 * `options.tls` is given. With TLS, every server's certificate must name the
 * channel's authority in its subjectAltName: the DNS name, or for an address
 * list the first address of the list (grpc-js checks each copy against it).
 */
export function createClient<C>(Ctor: ClientCtor<C>, addresses: string, options: ClientOptions = {}): C {
  return new Ctor(grpcTarget(addresses), options.tls?.channel ?? credentials.createInsecure(), {
    ...channelOptions,
    "grpc.service_config": JSON.stringify(serviceConfig(options.retry)),
  });
}

/** Metadata carrying the mesh's internal token. */
export function internalMetadata(token: string): Metadata {
  const md = new Metadata();
  md.set(INTERNAL_TOKEN_METADATA_KEY, token);
  return md;
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (err: ServiceError | null, res: Res) => void,
) => ClientUnaryCall;

/**
 * Calls a unary method with a deadline (every call has one) and turns its
 * error into a LonghaulError. Pass the method bound to its client.
 */
export function callUnary<Req, Res>(
  method: UnaryMethod<Req, Res>,
  request: Req,
  metadata: Metadata,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Res> {
  injectTrace((name, value) => metadata.set(name, value));
  return new Promise<Res>((resolve, reject) => {
    let call: ReturnType<UnaryMethod<Req, Res>>;
    try {
      call = method(request, metadata, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(fromGrpcError(err)) : resolve(res)));
    } catch (err) {
      // grpc-js throws at once on a client closed at shutdown: a call that
      // cannot be made now, as when its peer is gone (503), not a bug (500).
      if (err instanceof Error && /Channel has been shut down/.test(err.message)) {
        reject(new LonghaulError("unavailable", "the service is shutting down", { cause: err }));
        return;
      }
      throw err;
    }
    signal?.addEventListener("abort", () => call.cancel(), { once: true });
  });
}
