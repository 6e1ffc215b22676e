import {
  Metadata,
  credentials,
  type CallOptions,
  type ChannelOptions,
  type ClientUnaryCall,
  type ServiceError,
} from "@grpc/grpc-js";
import { fromGrpcError } from "./errors.js";
import { INTERNAL_TOKEN_METADATA_KEY } from "./server.js";

type ClientCtor<C> = new (address: string, creds: ReturnType<typeof credentials.createInsecure>, options?: Partial<ChannelOptions>) => C;

/** Channel options every client of the mesh uses: keepalive and generous message sizes. */
export const channelOptions: Partial<ChannelOptions> = {
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.max_receive_message_length": 16 * 1024 * 1024,
  "grpc.max_send_message_length": 16 * 1024 * 1024,
  // grpc-js backs off reconnects up to 120 s by default, and calls fail fast
  // meanwhile: a peer back after a restart would stay "unavailable" for minutes.
  "grpc.max_reconnect_backoff_ms": 5_000,
};

/** Creates a plaintext client of a generated service for one address. */
export function createClient<C>(Ctor: ClientCtor<C>, address: string): C {
  return new Ctor(address, credentials.createInsecure(), channelOptions);
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
  return new Promise<Res>((resolve, reject) => {
    const call = method(request, metadata, { deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(fromGrpcError(err)) : resolve(res),
    );
    signal?.addEventListener("abort", () => call.cancel(), { once: true });
  });
}
