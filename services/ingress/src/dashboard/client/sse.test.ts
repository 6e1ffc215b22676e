import { describe, expect, it } from "vitest";
import { SseParser } from "./sse.js";

describe("SSE parser", () => {
  it("parses frames split anywhere, with comments, retry and multi-line data", () => {
    const p = new SseParser();
    const text = 'retry: 3000\n\n: heartbeat\n\nevent: run\ndata: {"a":1}\n\ndata: one\ndata: two\n\nevent: error\ndata:{"e":1}\n\n';
    const events = [...text].flatMap((ch) => p.push(ch));
    expect(events).toEqual([
      { event: "run", data: '{"a":1}' },
      { event: "message", data: "one\ntwo" },
      { event: "error", data: '{"e":1}' },
    ]);
    expect(p.retryMs).toBe(3000);
  });

  it("takes CRLF and CR line ends, a CRLF split between chunks included", () => {
    const p = new SseParser();
    expect(p.push("event: run\r")).toEqual([]);
    expect(p.push("\ndata: x\r\n\r")).toEqual([]);
    expect(p.push("\n")).toEqual([{ event: "run", data: "x" }]);
    // A CR at the very end may be half a CRLF: the frame ends once the next byte shows it is not.
    expect(p.push("data: y\r\r")).toEqual([]);
    expect(p.push(": next")).toEqual([{ event: "message", data: "y" }]);
  });

  it("drops a frame without data and ignores unknown fields", () => {
    const p = new SseParser();
    expect(p.push("event: run\n\nid: 7\nfoo: bar\ndata: z\n\n")).toEqual([{ event: "message", data: "z" }]);
  });
});
