import { spawn } from "node:child_process";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createLogger, maskUrlSecrets } from "./logger.js";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      raw.push(chunk.toString());
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { lines, raw, log: createLogger("test", "info", stream) };
}

describe("createLogger", () => {
  it("writes JSON lines with the service and level", () => {
    const { lines, log } = capture();
    log.info({ run_id: "r1" }, "hello");
    expect(lines[0]).toMatchObject({ service: "test", level: 30, run_id: "r1", msg: "hello" });
  });

  it("never writes API keys, tokens, webhook secrets or authorization headers", () => {
    const { raw, lines, log } = capture();
    log.info(
      {
        apiKey: "lh_key_1",
        config: { LONGHAUL_INTERNAL_TOKEN: "tok_2", LONGHAUL_DEV_API_KEY: "lh_key_3", DATABASE_URL: "postgres://u:pw4@db/x" },
        headers: { authorization: "Bearer lh_key_5", "x-longhaul-internal-token": "tok_6", accept: "*/*" },
        request: { headers: [{ name: "Authorization", value: "Bearer lh_key_7" }, { name: "x-ok", value: "kept" }] },
        webhookSecret: "whsec_8",
        secrets: ["whsec_9"],
      },
      "a line",
    );
    for (const s of ["lh_key_1", "tok_2", "lh_key_3", "pw4", "lh_key_5", "tok_6", "lh_key_7", "whsec_8", "whsec_9"]) {
      expect(raw.join(""), s).not.toContain(s);
    }
    expect(lines[0]).toMatchObject({
      headers: { accept: "*/*" },
      request: { headers: [{ name: "Authorization", value: "[redacted]" }, { name: "x-ok", value: "kept" }] },
      config: { DATABASE_URL: "postgres://u:[redacted]@db/x" },
    });
  });

  it("masks passwords and secret query values in URLs", () => {
    expect(maskUrlSecrets("https://user:hunter2@app.example/predict?x=1&api_key=abc&token=def")).toBe(
      "https://user:[redacted]@app.example/predict?x=1&api_key=[redacted]&token=[redacted]",
    );
    expect(maskUrlSecrets("http://127.0.0.1:8080/dev/echo?lang=fr")).toBe("http://127.0.0.1:8080/dev/echo?lang=fr");
    const { lines, log } = capture();
    log.info({ url: "https://u:p@h/x?sig=s" }, "calling app");
    expect(lines[0]!.url).toBe("https://u:[redacted]@h/x?sig=[redacted]");
  });
});

// A real process writing to a real pipe: stdout lines are buffered, so they
// must still arrive while the process runs, and all of them when it exits.
describe("stdout", () => {
  const logger = fileURLToPath(new URL("./logger.ts", import.meta.url));

  /** Runs `body` in a child with `log` in scope; resolves with its stdout lines as they arrive. */
  function child(
    body: string,
    onLine?: (line: Record<string, unknown>, kill: () => void) => void,
    onSpawn?: (proc: ReturnType<typeof spawn>) => void,
  ) {
    const code = `const { createLogger } = await import(${JSON.stringify(logger)}); const log = createLogger("child"); ${body}`;
    const proc = spawn(process.execPath, ["--experimental-strip-types", "--no-warnings", "--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
    onSpawn?.(proc);
    const lines: Record<string, unknown>[] = [];
    let rest = "";
    proc.stdout.on("data", (chunk: Buffer) => {
      const parts = (rest + chunk.toString()).split("\n");
      rest = parts.pop() ?? "";
      for (const p of parts) {
        const line = JSON.parse(p) as Record<string, unknown>;
        lines.push(line);
        onLine?.(line, () => proc.kill("SIGKILL"));
      }
    });
    return new Promise<Record<string, unknown>[]>((resolve) => proc.on("close", () => resolve(lines)));
  }

  it("writes every line by process.exit, however many", async () => {
    const lines = await child(`for (let i = 0; i < 500; i++) log.info({ i }, "line"); process.exit(3);`);
    expect(lines.map((l) => l.i)).toEqual([...Array(500).keys()]);
  });

  it("makes no write while it has nothing to write: an idle process does not wake for its logger", async () => {
    // Once its one line is out, the child counts its write system calls (all threads) over 600 ms of idling.
    const lines = await child(
      `const { readFileSync } = await import("node:fs");
       const writes = () => Number(/syscw: (\\d+)/.exec(readFileSync("/proc/self/io", "utf8"))[1]);
       log.info("once");
       setTimeout(() => {
         const before = writes();
         setTimeout(() => { log.info({ idleWrites: writes() - before }, "idle"); process.exit(0); }, 600);
       }, 300);`,
    );
    expect(lines.map((l) => l.msg)).toEqual(["once", "idle"]);
    expect(lines[1]).toMatchObject({ idleWrites: 0 });
  });

  it("writes a line that came while a write was held up, once that write is done", async () => {
    // The first line's flush (at 100 ms) queues its write behind four slow
    // jobs on libuv's thread pool (busy for ~1 s), so the second line's
    // flush, 100 ms after it came, finds that write still in flight. The
    // second line must still follow once the write is done (it did not: on a
    // busy CI machine an idle service's last lines, "ready" among them,
    // stayed in the buffer).
    let proc: ReturnType<typeof spawn> | undefined;
    const lines = child(
      `const { pbkdf2 } = await import("node:crypto");
       log.info("first");
       setTimeout(() => { for (let i = 0; i < 4; i++) pbkdf2("p", "s", 2_000_000, 32, "sha256", () => {}); }, 60);
       setTimeout(() => log.info("second"), 150);
       setTimeout(() => {}, 20_000);`,
      (line, kill) => {
        if (line.msg === "second") kill();
      },
      (p) => (proc = p),
    );
    const giveUp = setTimeout(() => proc?.kill("SIGKILL"), 8_000);
    expect((await lines).map((l) => l.msg)).toEqual(["first", "second"]);
    clearTimeout(giveUp);
  }, 10_000);

  it("writes a line within a moment while the process goes on", async () => {
    // The child logs once and then idles for 20 s; it is killed when its line arrives.
    const lines = await child(`log.info("alone"); setTimeout(() => log.info("late"), 20_000);`, (line, kill) => {
      if (line.msg === "alone") kill();
    });
    expect(lines.map((l) => l.msg)).toEqual(["alone"]);
  });
});
