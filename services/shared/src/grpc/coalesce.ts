import type { Writable } from "node:stream";

/**
 * Lets a server stream send the messages written while one is on its way
 * together, where grpc-js would make one socket write per message.
 *
 * grpc-js's server streams are object-mode Writables without `_writev`: the
 * next message goes to HTTP/2 only once the one before it has been written
 * to the socket, so a scheduler answering a commit group's submits or
 * handing off its runs made one system call, and woke its peer once, per
 * message (tests/bench/README.md, "Sixteenth pass"). With `_writev` the
 * Writable hands over everything that queued meanwhile at once; HTTP/2
 * buffers it behind the frame in flight and writes it in one go. A lone
 * message still leaves at once: nothing waits for company.
 *
 * Server streams only. A grpc-js server call writes each message straight
 * to its HTTP/2 stream, so taking several at once keeps their order, as
 * long as every server interceptor passes messages and metadata on at once
 * (ours do: createGrpcServer): one that held them back would keep only the
 * last. A client call may still be resolving its channel and keeps only one
 * message waiting there, so client streams are left as they are.
 */
export function coalesceWrites<S extends Writable>(stream: S): S {
  stream._writev = function writev(chunks, callback) {
    let left = chunks.length;
    let done = false;
    const written = (err?: Error | null) => {
      if (done) return;
      if (err || --left === 0) {
        done = true;
        callback(err);
      }
    };
    for (const { chunk, encoding } of chunks) {
      if (done) break;
      this._write(chunk, encoding, written);
    }
  };
  return stream;
}
