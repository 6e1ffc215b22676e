import { once } from "node:events";
import type { ClientDuplexStream } from "@grpc/grpc-js";
import { LonghaulError } from "@longhaul/shared/errors";
import { createClient, fromGrpcError, internalMetadata, type GrpcTls } from "@longhaul/shared/grpc";
import { invokerPb } from "@longhaul/shared/proto";
import { injectTrace } from "@longhaul/shared/telemetry";
import type { InvokeResponsePart, InvokerPort } from "../../core/ports.js";

/** Request body pieces sent per gRPC message; small enough to stream, big enough to be cheap. */
const CHUNK_BYTES = 64 * 1024;

type InvokeCall = ClientDuplexStream<invokerPb.InvokeRequest, invokerPb.InvokeResponse>;

/** Writes one message, waiting for `drain` when grpc-js's buffer is full (backpressure). */
async function write(call: InvokeCall, msg: invokerPb.InvokeRequest, stop: AbortSignal): Promise<void> {
  stop.throwIfAborted();
  if (!call.write(msg)) await once(call, "drain", { signal: stop });
}

/** Sends the head, the body in chunks, then `end`. */
async function pumpRequest(
  call: InvokeCall,
  head: invokerPb.InvokeHead,
  body: AsyncIterable<Buffer>,
  stop: AbortSignal,
): Promise<void> {
  await write(call, { part: { $case: "head", value: head } }, stop);
  for await (const chunk of body) {
    for (let off = 0; off < chunk.length; off += CHUNK_BYTES) {
      await write(call, { part: { $case: "bodyChunk", value: chunk.subarray(off, off + CHUNK_BYTES) } }, stop);
    }
  }
  await write(call, { part: { $case: "end", value: true } }, stop);
  call.end();
}

/**
 * InvokerService/Invoke as the gateway's invoker port, spread round-robin over
 * the invokers at `addresses` (over TLS when `tls` is given); `close()` drops the channel.
 */
export function createInvokerClient(addresses: string, internalToken: string, tls?: GrpcTls): InvokerPort & { close(): void } {
  const client = createClient(invokerPb.InvokerServiceClient, addresses, { tls });
  return {
    async *invoke(head, body, deadlineSeconds, signal): AsyncGenerator<InvokeResponsePart> {
      const metadata = internalMetadata(internalToken);
      injectTrace((name, value) => metadata.set(name, value));
      const call = client.invoke(metadata, { deadline: Date.now() + deadlineSeconds * 1000 });
      const cancel = () => call.cancel();
      signal.addEventListener("abort", cancel, { once: true });
      // The request streams in while the answer streams out: the app may answer
      // before it has read the whole body. A failing upload (client gone)
      // cancels the call, which then ends the loop below with an error.
      // Once the answer is over, the upload stops too (an app may answer
      // without reading the whole body).
      const stopUpload = new AbortController();
      let uploadError: unknown;
      pumpRequest(call, head, body, stopUpload.signal).catch((err: unknown) => {
        if (stopUpload.signal.aborted) return;
        uploadError = err;
        call.cancel();
      });
      try {
        for await (const msg of call as AsyncIterable<invokerPb.InvokeResponse>) {
          const part = msg.part;
          if (part?.$case === "head") {
            yield { kind: "head", statusCode: part.value.statusCode, headers: part.value.headers };
          } else if (part?.$case === "bodyChunk") {
            yield { kind: "body", chunk: part.value };
          }
        }
      } catch (err) {
        if (uploadError !== undefined) {
          throw new LonghaulError("invalid_argument", "request body was not received", { cause: uploadError });
        }
        throw fromGrpcError(err);
      } finally {
        signal.removeEventListener("abort", cancel);
        stopUpload.abort();
        call.cancel();
      }
    },
    close: () => client.close(),
  };
}
