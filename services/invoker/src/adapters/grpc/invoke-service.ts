import { Readable } from "node:stream";
import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { Dispatcher } from "undici";
import { LonghaulError } from "@longhaul/shared/errors";
import type { Logger } from "@longhaul/shared/logger";
import { inServerSpan, toServiceError } from "@longhaul/shared/grpc";
import type { invokerPb } from "@longhaul/shared/proto";
import { injectTrace } from "@longhaul/shared/telemetry";
import type { Capacity } from "../../core/capacity.js";
import { passableHeaders } from "../../core/outbound-headers.js";
import type { CallOutcome, InvokerMetrics } from "../../core/ports.js";
import { describeUpstreamError, flatHeaders, headerPairs, originAndPath } from "../http/upstream-client.js";
import type { SyncRunRecord } from "./scheduler-client.js";

type InvokeCall = ServerDuplexStream<invokerPb.InvokeRequest, invokerPb.InvokeResponse>;

/** Largest body chunk sent back in one message. */
export const MAX_CHUNK_BYTES = 64 * 1024;
/** A sync call is bounded like a run: 12 h at most (DESIGN.md). */
const MAX_TIMEOUT_SECONDS = 12 * 3600;

export interface InvokeServiceOptions {
  agent: Dispatcher;
  capacity: Capacity;
  metrics: InvokerMetrics;
  log: Logger;
  /** Records the finished call; fire and forget (errors are logged). */
  recordSyncRun(record: SyncRunRecord): Promise<string>;
}

/**
 * `InvokerService/Invoke`: synchronous pass-through. The request body streams
 * to the app as it arrives; the app's status, headers and body stream back.
 * A client cancel aborts the upstream call.
 */
export function createInvokeService(o: InvokeServiceOptions): { invoke: (call: InvokeCall) => void } {
  return {
    invoke(call) {
      inServerSpan("Invoke", call.metadata, () => handle(o, call)).catch((err: unknown) => o.log.error({ err }, "invoke handler failed"));
    },
  };
}

async function handle(o: InvokeServiceOptions, call: InvokeCall): Promise<void> {
  const messages = call[Symbol.asyncIterator]() as AsyncIterator<invokerPb.InvokeRequest>;
  const first = await messages.next();
  if (first.done) return;
  if (first.value.part?.$case !== "head") {
    fail(call, new LonghaulError("invalid_argument", "the first message of Invoke must be `head`"));
    return;
  }
  const head = first.value.part.value;

  const controller = new AbortController();
  const onCancelled = () => controller.abort("client");
  call.on("cancelled", onCancelled);
  const timeoutSeconds = head.timeoutSeconds > 0 ? Math.min(head.timeoutSeconds, MAX_TIMEOUT_SECONDS) : MAX_TIMEOUT_SECONDS;
  const timer = setTimeout(() => controller.abort("timeout"), timeoutSeconds * 1000);

  const release = o.capacity.acquire();
  o.metrics.callStarted("sync");
  const startedAt = new Date();
  const log = o.log.child({ project: head.project, app: head.app, method: head.method });
  let statusCode = 0;
  let outcome: CallOutcome = "connect_error";
  let error: LonghaulError | undefined;

  try {
    const body = await requestBody(messages);
    const headers = flatHeaders(passableHeaders(head.headers, body !== null));
    injectTrace((name, value) => headers.push(name, value));
    const res = await o.agent.request({
      ...originAndPath(head.url),
      method: (head.method || "GET").toUpperCase() as Dispatcher.HttpMethod,
      headers,
      body,
      signal: controller.signal,
    });
    statusCode = res.statusCode;
    await write(call, { part: { $case: "head", value: { statusCode, headers: headerPairs(res.headers) } } });
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      for (let at = 0; at < chunk.byteLength; at += MAX_CHUNK_BYTES) {
        await write(call, { part: { $case: "bodyChunk", value: chunk.subarray(at, at + MAX_CHUNK_BYTES) } });
      }
    }
    outcome = statusCode >= 200 && statusCode < 300 ? "succeeded" : "app_error";
    call.end();
  } catch (err) {
    const reason = controller.signal.aborted ? (controller.signal.reason as string) : undefined;
    if (reason === "client") {
      outcome = "cancelled";
      log.info({ status_code: statusCode }, "sync call cancelled by the client");
    } else if (reason === "timeout") {
      outcome = "timeout";
      error = new LonghaulError("deadline_exceeded", `upstream did not answer within ${timeoutSeconds} s`);
    } else if (err instanceof LonghaulError) {
      outcome = "connect_error";
      error = err;
    } else if ((err as { code?: unknown }).code === "ERR_INVALID_URL") {
      error = new LonghaulError("invalid_argument", `invalid upstream URL: ${head.url}`);
    } else {
      outcome = "connect_error";
      error = new LonghaulError("unavailable", `upstream error: ${describeUpstreamError(err)}`, { cause: err });
    }
    if (error) {
      log.warn({ err: error, status_code: statusCode }, "sync call failed");
      fail(call, error);
    }
  } finally {
    clearTimeout(timer);
    call.off("cancelled", onCancelled);
    release();
    const finishedAt = new Date();
    o.metrics.callEnded("sync", outcome, (finishedAt.getTime() - startedAt.getTime()) / 1000);
    log.info({ status_code: statusCode, outcome }, "sync call ended");
    const u = safeUrl(head.url);
    o.recordSyncRun({
      project: head.project,
      app: head.app,
      method: head.method,
      path: u ? `${u.pathname}${u.search}` : "",
      statusCode,
      errorCode: outcome === "succeeded" || outcome === "app_error" ? "" : outcome,
      errorMessage: error?.message ?? "",
      startedAt,
      finishedAt,
    }).catch((err: unknown) => log.warn({ err }, "RecordSyncRun failed"));
  }
}

/**
 * The request body as a stream fed by the client's `body_chunk`s, or null
 * when `end` (or the end of the stream) comes first. Reading the iterator
 * only as the upstream socket drains passes backpressure to the client.
 */
async function requestBody(messages: AsyncIterator<invokerPb.InvokeRequest>): Promise<Readable | null> {
  const firstChunk = await nextChunk(messages);
  if (firstChunk === null) return null;
  async function* chunks(): AsyncGenerator<Buffer> {
    yield firstChunk as Buffer;
    for (;;) {
      const c = await nextChunk(messages);
      if (c === null) return;
      yield c;
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}

async function nextChunk(messages: AsyncIterator<invokerPb.InvokeRequest>): Promise<Buffer | null> {
  for (;;) {
    const m = await messages.next();
    if (m.done) return null;
    const part = m.value.part;
    if (!part || part.$case === "end") return null;
    if (part.$case === "head") throw new LonghaulError("invalid_argument", "`head` may be sent only once");
    if (part.value.byteLength > 0) return part.value;
  }
}

/** Writes one message, waiting for the client to drain when its buffer is full. */
function write(call: InvokeCall, msg: invokerPb.InvokeResponse): Promise<void> {
  if (call.cancelled) return Promise.reject(new Error("call cancelled"));
  if (call.write(msg)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      call.off("cancelled", onCancel);
      resolve();
    };
    const onCancel = () => {
      call.off("drain", onDrain);
      reject(new Error("call cancelled"));
    };
    call.once("drain", onDrain);
    call.once("cancelled", onCancel);
  });
}

function fail(call: InvokeCall, err: LonghaulError): void {
  if (call.cancelled) return;
  call.emit("error", toServiceError(err));
}

function safeUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}
