import { createParser, type EventSourceMessage } from "eventsource-parser";

/**
 * The frames of one server-sent-events answer (WHATWG HTML "Server-sent
 * events", parsed by `eventsource-parser`), in order, and the `retry:`
 * delay the server asked for, if any.
 */
export async function* readSse(body: ReadableStream<Uint8Array>, onRetry: (ms: number) => void): AsyncGenerator<EventSourceMessage> {
  const queue: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (e) => queue.push(e), onRetry });
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
      while (queue.length > 0) yield queue.shift()!;
    }
    parser.feed(decoder.decode());
    while (queue.length > 0) yield queue.shift()!;
  } finally {
    // The consumer stopped early (break, return): release the connection.
    await reader.cancel().catch(() => {});
  }
}
