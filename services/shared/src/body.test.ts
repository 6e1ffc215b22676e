import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { readUpTo } from "./body.js";

/** A stream that gets `chunks` one turn apart, then ends (or fails, or closes). */
function source(chunks: string[], then: "end" | "error" | "close" = "end") {
  const s = new PassThrough();
  void (async () => {
    for (const c of chunks) {
      await new Promise((r) => setImmediate(r));
      s.write(c);
    }
    await new Promise((r) => setImmediate(r));
    if (then === "end") s.end();
    else if (then === "error") s.destroy(new Error("reset by peer"));
    else s.destroy();
  })();
  return s;
}

describe("readUpTo", () => {
  it("reads a body to its end, a body of exactly max bytes included", async () => {
    expect(await readUpTo(source(["ab", "cd"]), 10, "stop")).toEqual({ body: Buffer.from("abcd"), truncated: false });
    expect(await readUpTo(source(["ab", "cd"]), 4, "stop")).toEqual({ body: Buffer.from("abcd"), truncated: false });
    expect(await readUpTo(source([]), 4, "drain")).toEqual({ body: Buffer.alloc(0), truncated: false });
  });

  it("drain: keeps max bytes, reads the rest to the end", async () => {
    const s = source(["abc", "def", "ghi"]);
    expect(await readUpTo(s, 4, "drain")).toEqual({ body: Buffer.from("abcd"), truncated: true });
    expect(s.readableEnded).toBe(true);
  });

  it("stop: settles at the first byte past max, the stream left paused and unended", async () => {
    const s = source(["abc", "def", "ghi"]);
    expect(await readUpTo(s, 4, "stop")).toEqual({ body: Buffer.from("abcd"), truncated: true });
    expect(s.isPaused()).toBe(true);
    expect(s.readableEnded).toBe(false);
    s.destroy();
  });

  it("says how a body failed, with what came before, and never rejects", async () => {
    const failed = await readUpTo(source(["abc"], "error"), 10, "drain");
    expect(failed.body.toString()).toBe("abc");
    expect(failed.error?.message).toBe("reset by peer");
    const closed = await readUpTo(source(["ab"], "close"), 10, "stop");
    expect(closed.body.toString()).toBe("ab");
    expect(closed.error).toMatchObject({ code: "ERR_STREAM_PREMATURE_CLOSE" });
    const gone = new PassThrough();
    gone.destroy();
    expect((await readUpTo(gone, 10, "stop")).error).toBeDefined();
  });
});
