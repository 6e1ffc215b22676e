import { trace } from "@opentelemetry/api";
import { pino, type DestinationStream, type Logger } from "pino";

export type { Logger } from "pino";

/** Field and header names whose values are secrets: API keys, tokens, webhook secrets, passwords. */
const SECRET_NAME = /authorization|api[-_]?key|secret|token|password|passwd|cookie|signature/i;
/** `scheme://user:password@` in a URL. */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s/:@]*:)[^\s/@]*@/gi;
/** `?api_key=...`, `&token=...` and the like in a URL's query. */
const SECRET_QUERY = /([?&][^=&#\s]*(?:key|token|secret|password|signature|sig)[^=&#\s]*=)[^&#\s]*/gi;

const REDACTED = "[redacted]";
/** How deep a logged object is searched for secrets; log objects are shallow. */
const MAX_DEPTH = 4;

/** A string with the passwords and secret query values of any URL in it masked. */
export function maskUrlSecrets(text: string): string {
  if (!text.includes("://") && !text.includes("=")) return text;
  return text.replace(URL_PASSWORD, `$1${REDACTED}@`).replace(SECRET_QUERY, `$1${REDACTED}`);
}

/**
 * A copy of a log object with secrets masked: values of secret-named fields,
 * `{name, value}` header pairs with a secret name, and passwords or secret
 * query values inside URLs. Errors are left to pino's serializer.
 */
function scrub(value: unknown, depth: number): unknown {
  if (typeof value === "string") return maskUrlSecrets(value);
  if (value === null || typeof value !== "object" || depth >= MAX_DEPTH) return value;
  if (value instanceof Error || value instanceof Date || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_NAME.test(k) ? REDACTED : scrub(v, depth + 1);
  if (typeof out.name === "string" && "value" in out && SECRET_NAME.test(out.name)) out.value = REDACTED;
  return out;
}

/** Longest a log line waits in the process before it is written to stdout. */
export const LOG_FLUSH_MS = 100;
/** Buffered log bytes that are written at once, without waiting for the timer. */
const LOG_FLUSH_BYTES = 8 * 1024;

let stdout: DestinationStream | undefined;

/**
 * The process's stdout for log lines, shared by every logger: lines are
 * gathered and written together ({@link LOG_FLUSH_MS} after the first line of
 * a batch, at {@link LOG_FLUSH_BYTES}, and at exit), so a busy service makes
 * one write a tenth of a second, not one per line, and an idle one none (no
 * timer runs while nothing waits). A kill -9 loses at most the last
 * {@link LOG_FLUSH_MS} of lines; a normal exit, `process.exit` and a crash
 * write them all (pino flushes the destination on exit).
 */
function bufferedStdout(): DestinationStream {
  if (stdout) return stdout;
  const boom = pino.destination({ dest: 1, sync: false, minLength: LOG_FLUSH_BYTES });
  let timer: NodeJS.Timeout | undefined;
  /** Bytes handed to the destination and not written yet. */
  let unwritten = 0;
  const flush = () => {
    timer = undefined;
    // Ended at exit already (pino's exit hook): nothing left to write.
    if (!(boom as unknown as { destroyed: boolean }).destroyed) boom.flush();
  };
  const flushLater = () => {
    timer ??= setTimeout(flush, LOG_FLUSH_MS).unref();
  };
  boom.on("write", (bytes: number) => {
    unwritten -= bytes;
  });
  // A flush that finds a write in flight does nothing, and a write that ends
  // with fewer than LOG_FLUSH_BYTES behind it leaves them waiting: those
  // lines get a flush of their own. (They waited for the next line before,
  // for ever in an idle service: on a busy CI machine, whose thread pool held
  // a write past the flush, a service's "ready" never came.)
  boom.on("drain", () => {
    if (unwritten > 0) flushLater();
  });
  stdout = {
    write(line: string) {
      boom.write(line);
      unwritten += Buffer.byteLength(line);
      flushLater();
    },
  };
  return stdout;
}

/**
 * A JSON logger whose every line carries the active trace and span ids, so a
 * log line leads to its trace (and a run's lines share its trace id). Secrets
 * (API keys, the internal token, webhook secrets, authorization headers, URL
 * passwords) are masked on every line. Lines go to stdout, buffered for up to
 * {@link LOG_FLUSH_MS} (see bufferedStdout); `destination` is for tests.
 */
export function createLogger(service: string, level = "info", destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      log: (obj: Record<string, unknown>) => scrub(obj, 0) as Record<string, unknown>,
    },
    mixin() {
      const ctx = trace.getActiveSpan()?.spanContext();
      return ctx && trace.isSpanContextValid(ctx) ? { trace_id: ctx.traceId, span_id: ctx.spanId } : {};
    },
  };
  return pino(options, destination ?? bufferedStdout());
}
