import { ApiError, authHeaders, errorOf } from "./api.js";

/**
 * Server-sent events over fetch: EventSource cannot send an `Authorization`
 * header, and the API key must not travel in a URL (it would land in logs).
 * The parser follows the WHATWG event-stream format (fields `event`, `data`,
 * `retry`; comments; LF, CRLF or CR line ends).
 */

export interface SseEvent {
  event: string;
  data: string;
}

/** Incremental parser: feed it text as it arrives, get complete events back. */
export class SseParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  /** The last `retry:` the server sent, in milliseconds. */
  retryMs: number | null = null;

  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const out: SseEvent[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      // A lone CR at the end may be the first half of a CRLF: wait for more.
      if (!m || (m[0] === "\r" && m.index === this.buffer.length - 1)) break;
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      if (line === "") {
        if (this.data.length > 0) out.push({ event: this.event || "message", data: this.data.join("\n") });
        this.event = "";
        this.data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.event = value;
      else if (field === "data") this.data.push(value);
      else if (field === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    return out;
  }
}

export interface StreamHandlers {
  /** The stream is open (after each reconnect too): reload what it may have missed. */
  onOpen?(): void;
  onEvent(ev: SseEvent): void;
  /** Live or not, for the page's indicator. */
  onLive?(live: boolean): void;
  /** A 4xx answer: the stream stops for good. */
  onFatal?(err: ApiError): void;
  /** Asked after the stream ended on its own: open it again? @default true */
  reconnect?(): boolean;
}

/** An open stream; `close()` ends it for good. */
export interface Stream {
  close(): void;
}

const MAX_BACKOFF_MS = 30_000;

/** Reads `url` as SSE until closed, reconnecting after an end or a failure. */
export function openStream(url: string, handlers: StreamHandlers): Stream {
  const ac = new AbortController();
  let failures = 0;

  const once = async (parser: SseParser): Promise<void> => {
    const res = await fetch(url, { headers: { accept: "text/event-stream", ...authHeaders() }, signal: ac.signal, cache: "no-store" });
    if (!res.ok || !res.body) throw await errorOf(res);
    failures = 0;
    handlers.onLive?.(true);
    handlers.onOpen?.();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const ev of parser.push(value)) handlers.onEvent(ev);
    }
  };

  const loop = async () => {
    let retryMs = 3000;
    while (!ac.signal.aborted) {
      // A fresh parser per connection: a frame cut by a dropped connection is discarded.
      const parser = new SseParser();
      try {
        await once(parser);
        if (handlers.reconnect && !handlers.reconnect()) break;
      } catch (err) {
        if (ac.signal.aborted) break;
        if (err instanceof ApiError && err.status >= 400 && err.status < 500) {
          handlers.onLive?.(false);
          handlers.onFatal?.(err);
          break;
        }
        failures++;
      }
      if (ac.signal.aborted) break;
      handlers.onLive?.(false);
      retryMs = parser.retryMs ?? retryMs;
      const wait = failures === 0 ? retryMs : Math.min(MAX_BACKOFF_MS, 1000 * 2 ** failures);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait);
        ac.signal.addEventListener(
          "abort",
          () => {
            clearTimeout(t);
            resolve();
          },
          { once: true },
        );
      });
    }
  };
  loop().catch((err: unknown) => console.error("event stream stopped", err));
  return { close: () => ac.abort() };
}
