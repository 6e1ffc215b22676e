import type { Readable } from "node:stream";

/** A body as read: the bytes kept, whether more came than were kept, and how reading failed. */
export interface ReadBody {
  /** What came, up to `max` bytes (what came before the failure, when it failed). */
  body: Buffer;
  /** More than `max` bytes came; `body` holds the first `max`. */
  truncated: boolean;
  /** The stream's error, or a premature close; undefined when the body was read to its end or to `max`. */
  error?: Error;
}

/**
 * Reads a body stream up to `max` bytes. Past `max`, `over` says what
 * happens: "drain" reads on and drops the rest (the connection stays
 * usable); "stop" settles at once and leaves the stream as it is, paused,
 * to the caller (which destroys it, or answers and lets the server drop the
 * rest). Never rejects: a stream that fails or closes before its end
 * resolves with `error` and what came before it.
 *
 * Events rather than `for await`: an async iterator costs a promise per
 * chunk and a stream watcher per body, and every run's request and answers
 * pass here.
 */
export function readUpTo(stream: Readable, max: number, over: "drain" | "stop"): Promise<ReadBody> {
  if (stream.readableEnded) return Promise.resolve({ body: Buffer.alloc(0), truncated: false });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let truncated = false;
    const settle = (error?: Error) => {
      stream.off("data", onData).off("end", onEnd).off("error", onError).off("close", onClose);
      const body = Buffer.concat(chunks, kept);
      resolve(error ? { body, truncated, error } : { body, truncated });
    };
    const onData = (chunk: Buffer) => {
      const room = max - kept;
      if (chunk.length <= room) {
        chunks.push(chunk);
        kept += chunk.length;
        return;
      }
      if (room > 0) chunks.push(chunk.subarray(0, room));
      kept = max;
      truncated = true;
      if (over === "stop") {
        stream.pause();
        settle();
      }
    };
    const onEnd = () => settle();
    const onError = (err: Error) => settle(err);
    const onClose = () => settle(Object.assign(new Error("the body's stream closed before its end"), { code: "ERR_STREAM_PREMATURE_CLOSE" }));
    stream.on("data", onData).on("end", onEnd).on("error", onError).on("close", onClose);
    if (stream.destroyed) onClose();
  });
}
