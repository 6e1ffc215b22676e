import type { RequestContext } from "./router.js";
import type { RouteDeps } from "./route-deps.js";

/** Reconnect delay suggested to EventSource clients, in milliseconds. */
const RETRY_MS = 3000;
/**
 * Bytes an SSE answer may have waiting for a client that does not read; past
 * this the stream is dropped (the client reconnects and reloads) rather than
 * buffered without bound in the gateway.
 */
const MAX_BUFFERED_BYTES = 1024 * 1024;

/** An open `text/event-stream` answer. */
export interface SseStream {
  /** Writes one `event:` frame with JSON data; false once the stream is gone. */
  send(event: string, data: unknown): boolean;
  /** Ends the answer (heartbeats stop). */
  end(): void;
}

/**
 * Sends the 200 head of a server-sent-events answer and keeps it alive with
 * a comment line every heartbeat period, so that proxies do not close an
 * idle stream. Everything an SSE route writes goes through here.
 */
export function openSse(deps: RouteDeps, ctx: RequestContext): SseStream {
  const { res } = ctx;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-store",
    // nginx and friends would otherwise buffer the stream.
    "x-accel-buffering": "no",
  });
  deps.metrics.streamsStarted.inc({ kind: "sse" });
  res.write(`retry: ${RETRY_MS}\n\n`);
  const write = (text: string): boolean => {
    if (res.destroyed || res.writableEnded) return false;
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      ctx.log.warn({ buffered: res.writableLength }, "SSE client does not read; dropping the stream");
      res.destroy();
      return false;
    }
    res.write(text);
    return true;
  };
  const heartbeat = setInterval(() => write(": heartbeat\n\n"), deps.limits.sseHeartbeatSeconds * 1000);
  res.once("close", () => clearInterval(heartbeat));
  return {
    send: (event, data) => write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`),
    end() {
      clearInterval(heartbeat);
      if (!res.destroyed && !res.writableEnded) res.end();
    },
  };
}
