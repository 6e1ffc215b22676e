import { Metadata, type ServerDuplexStream } from "@grpc/grpc-js";
import { LonghaulError } from "@longhaul/shared/errors";
import { coalesceWrites, toServiceError } from "@longhaul/shared/grpc";
import type { Logger } from "@longhaul/shared/logger";

/**
 * Messages of one stream being handled at once before it stops reading (the
 * clients bound their own far lower; this only guards a broken client):
 * HTTP/2 flow control then holds the rest back.
 */
const MAX_PENDING = 4_096;

/** Options of {@link createAnsweredStreams}. */
export interface AnsweredStreamsOptions<Req extends { id: number }, Res> {
  /** The RPC's method name, in logs. */
  method: string;
  /** The message of the UNAVAILABLE that refuses messages and ends streams at shutdown. */
  shutdownMessage: string;
  /** The answer to one message, carrying its id; never rejects (a failure is an answer too). */
  answer(req: Req): Promise<Res>;
  /** The answer to a message that came after close(): not taken, the client sends it again to another copy. */
  refuse(req: Req, err: LonghaulError): Res;
  /**
   * The messages one message carries, itself included, when a message may
   * carry several (AttemptsRequest.more): each is handled and answered as if
   * it had come alone. Absent: one each.
   */
  unpack?(req: Req): Req[];
  /** Response headers sent as each stream opens (what this server understands). */
  headers?: Record<string, string>;
  log: Logger;
}

interface Stream<Req, Res> {
  call: ServerDuplexStream<Req, Res>;
  pending: number;
  paused: boolean;
  /** The client half-closed: no more messages come. */
  halfClosed: boolean;
  /** Writable: not cancelled, not ended by us. */
  open: boolean;
}

/**
 * The streams of one bidirectional RPC whose messages each carry an id and
 * get one answer with that id (SubmitRuns, Attempts). Messages are handled
 * concurrently and answered as they finish. A stream ends OK once the client
 * half-closed it and every message is answered; at shutdown (`close`) it ends
 * UNAVAILABLE once what it brought is answered, which the clients take as
 * "this copy is going away": a message they sent that got no answer is sent
 * again, on a new stream, to another copy.
 */
export function createAnsweredStreams<Req extends { id: number }, Res>(o: AnsweredStreamsOptions<Req, Res>) {
  const shuttingDown = new LonghaulError("unavailable", o.shutdownMessage);
  const streams = new Set<Stream<Req, Res>>();
  let closing = false;
  let onDrained: (() => void) | undefined;
  /** Messages taken before close() and answered after it. */
  let answeredClosing = 0;

  const forget = (s: Stream<Req, Res>) => {
    s.open = false;
    streams.delete(s);
    if (closing && streams.size === 0) onDrained?.();
  };

  /** Ends a stream once every message it brought is answered: OK after the client's half-close, UNAVAILABLE when closing. */
  const settle = (s: Stream<Req, Res>) => {
    if (!s.open || s.pending > 0 || !(s.halfClosed || closing)) return;
    forget(s);
    // The client opens its next stream on another copy (this one has said GOAWAY by now).
    if (closing) s.call.emit("error", toServiceError(shuttingDown));
    else s.call.end();
  };

  function serve(call: ServerDuplexStream<Req, Res>): void {
    // The answers of a commit group go out together, not one system call each.
    coalesceWrites(call);
    const s: Stream<Req, Res> = { call, pending: 0, paused: false, halfClosed: false, open: true };
    streams.add(s);
    // Headers at once: a client may take the stream as open only once they arrive.
    const headers = new Metadata();
    for (const [key, value] of Object.entries(o.headers ?? {})) headers.set(key, value);
    call.sendMetadata(headers);
    const take = (req: Req) => {
      if (!s.open) return;
      if (closing) {
        call.write(o.refuse(req, shuttingDown));
        return;
      }
      s.pending++;
      if (s.pending >= MAX_PENDING && !s.paused) {
        s.paused = true;
        call.pause();
      }
      void o.answer(req).then((res) => {
        s.pending--;
        if (s.paused && s.pending < MAX_PENDING / 2) {
          s.paused = false;
          call.resume();
        }
        if (s.open) {
          call.write(res);
          if (closing) answeredClosing++;
        }
        settle(s);
      });
    };
    call.on("data", (message: Req) => {
      if (!o.unpack) take(message);
      else for (const req of o.unpack(message)) take(req);
    });
    call.on("end", () => {
      s.halfClosed = true;
      settle(s);
    });
    call.on("cancelled", () => forget(s));
    call.on("error", () => forget(s));
    if (closing) settle(s);
  }

  return {
    serve,
    /**
     * Takes no more messages: each stream ends (UNAVAILABLE) once what it
     * brought is answered; new messages meanwhile are refused as
     * unavailable. Resolves when every stream has ended, or after
     * `timeoutMs`: the streams still waiting for an answer then end
     * UNAVAILABLE at once (their clients send those messages again to
     * another copy: both SubmitRuns and Attempts messages are safe to
     * repeat), so that a message stuck on the database cannot hold the
     * shutdown past its grace.
     */
    close(timeoutMs: number): Promise<void> {
      closing = true;
      const taken = [...streams].reduce((n, s) => n + s.pending, 0);
      o.log.info({ method: o.method, streams: streams.size, in_flight: taken }, `draining ${o.method} streams`);
      const drained = new Promise<void>((resolve) => {
        onDrained = resolve;
      }).then(() => o.log.info({ method: o.method, answered: answeredClosing }, `${o.method} streams drained`));
      for (const s of [...streams]) settle(s);
      if (streams.size === 0) onDrained?.();
      const timer = setTimeout(() => {
        const left = [...streams];
        o.log.warn(
          { method: o.method, streams: left.length, in_flight: left.reduce((n, s) => n + s.pending, 0), timeout_ms: timeoutMs },
          `${o.method} streams not drained in time; ending them`,
        );
        for (const s of left) {
          forget(s);
          s.call.emit("error", toServiceError(shuttingDown));
        }
        onDrained?.();
      }, timeoutMs);
      return drained.finally(() => clearTimeout(timer));
    },
  };
}

export type AnsweredStreams<Req extends { id: number }, Res> = ReturnType<typeof createAnsweredStreams<Req, Res>>;
