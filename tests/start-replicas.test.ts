// `npm start -- --replicas 2` as a user runs it (scripts/start.mjs, the real
// services), on this file's own database, NATS prefix, state dir and ports:
// it prints every process with its pid and ports; a copy killed with -9 is
// started again while the others keep serving; the first Ctrl-C lets an
// invoker finish the call it holds (the schedulers outlive it, so the outcome
// is recorded); a second Ctrl-C stops everything at once.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../scripts/lib/mesh.mjs";
import { createTestDatabase, createTestNats } from "./helpers/isolation.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

const PORT_VARS = [
  "LONGHAUL_HTTP_PORT",
  "SCHEDULER_GRPC_PORT",
  "INVOKER_GRPC_PORT",
  "NOTIFIER_GRPC_PORT",
  "SCHEDULER_METRICS_PORT",
  "INVOKER_METRICS_PORT",
  "NOTIFIER_METRICS_PORT",
  "INGRESS_METRICS_PORT",
];
const API_KEY = `lh_dev_${"ab".repeat(16)}`;

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let nats: Awaited<ReturnType<typeof createTestNats>>;
let app: Peer;
/** Calls of the app waiting for the test to answer them. */
const held: (() => void)[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  nats = await createTestNats();
  app = await startPeer();
  app.handle(async (req, res) => {
    if (req.url.startsWith("/hold")) await new Promise<void>((r) => held.push(r));
    res.end("done");
  });
});

afterAll(async () => {
  for (const r of held.splice(0)) r();
  await app?.close();
  await nats?.cleanup();
  await database?.drop();
});

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen({ host: "127.0.0.1", port }, () => s.close(() => resolve(true)));
  });
}

/**
 * Base ports (and their copies' at +10) that are all free now, in 10000-19999:
 * below the ephemeral range (32768+), so that no outgoing connection takes one
 * meanwhile, and below the 20000-32000 that freePort (scripts/lib/net.mjs)
 * hands the meshes of the other test files, so that none of them picks one
 * of these between this check and start.mjs's services binding them (seconds
 * later: start.mjs migrates and starts the schedulers first).
 */
async function freeBases(): Promise<Record<string, string>> {
  for (;;) {
    // The highest port used is base + 17 (eight variables, copies at +10): at most 19,997.
    const base = 10_000 + Math.floor(Math.random() * 999) * 10;
    const ports = PORT_VARS.map((_, i) => base + i);
    const all = [...ports, ...ports.map((p) => p + 10)];
    if ((await Promise.all(all.map(portFree))).every(Boolean)) {
      return Object.fromEntries(PORT_VARS.map((v, i) => [v, String(ports[i])]));
    }
  }
}

interface Started {
  proc: ChildProcess;
  lines: string[];
  /** Resolves with the first line (from `from` on) that matches. */
  line(re: RegExp, from?: number): Promise<RegExpMatchArray>;
  /** `name#index` → pid, from the banner and every "started again" line. */
  pids: Map<string, number>;
  ports: Record<string, string>;
  exited: Promise<number | null>;
}

const running: Started[] = [];
afterEach(async () => {
  // A failed test leaves nothing behind. Ctrl-C twice first: start.mjs then
  // kills every copy it launched, the ones of a start that never printed its
  // banner (so no pid here) included; a SIGKILL of start.mjs alone would
  // leave them running with nobody to stop them.
  for (const s of running.splice(0)) {
    if (s.proc.exitCode === null && s.proc.signalCode === null) {
      killQuietly(s.proc.pid!, "SIGINT");
      await sleep(200);
      killQuietly(s.proc.pid!, "SIGINT");
      await Promise.race([s.exited, sleep(10_000)]);
    }
    for (const pid of s.pids.values()) killQuietly(-pid, "SIGKILL");
    killQuietly(s.proc.pid!, "SIGKILL");
  }
});

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function startLonghaul(args: string[]): Promise<Started> {
  const ports = await freeBases();
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "lh-start-"));
  const proc = spawn(process.execPath, [path.join(repoRoot, "scripts", "start.mjs"), ...args], {
    cwd: repoRoot,
    env: {
      ...process.env,
      ...ports,
      DATABASE_URL: database.url,
      NATS_URL: nats.url,
      LONGHAUL_NATS_PREFIX: nats.prefix,
      LONGHAUL_STATE_DIR: stateDir,
      LONGHAUL_DEV_API_KEY: API_KEY,
      LONGHAUL_INTERNAL_TOKEN: "t".repeat(32),
      // Long enough that only the end of the call ends the drain.
      INVOKER_DRAIN_SECONDS: "600",
      SCHEDULER_TICK_MS: "200",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  const pids = new Map<string, number>();
  const onLine = (l: string) => {
    lines.push(l);
    const m = /^\s+(\w+#\d+)\s+pid (\d+)\s/.exec(l) ?? /\] (\w+#\d+) started again: pid (\d+)/.exec(l);
    if (m) pids.set(m[1]!, Number(m[2]));
    for (const w of waiters.splice(0)) w();
  };
  readline.createInterface({ input: proc.stdout! }).on("line", onLine);
  readline.createInterface({ input: proc.stderr! }).on("line", onLine);
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  const line = (re: RegExp, from = 0) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        for (const l of lines.slice(from)) {
          const m = re.exec(l);
          if (m) return resolve(m);
        }
        if (proc.exitCode !== null) return reject(new Error(`start.mjs exited (${proc.exitCode}) before ${re}:\n${lines.slice(-30).join("\n")}`));
        waiters.push(check);
      };
      check();
      void exited.then(() => setTimeout(check, 100));
    });
  const s: Started = { proc, lines, line, pids, ports, exited };
  running.push(s);
  await line(/Longhaul is running/);
  await line(/Ctrl-C stops everything/);
  return s;
}

async function runStatus(id: string): Promise<string | undefined> {
  const db = new pg.Client({ connectionString: database.url });
  await db.connect();
  try {
    const { rows } = await db.query<{ status: string }>("select status from runs where id = $1", [id]);
    return rows[0]?.status;
  } finally {
    await db.end();
  }
}

describe("npm start -- --replicas 2", () => {
  it("runs two of each but the gateway, starts a killed copy again, and lets an invoker finish its call on Ctrl-C", async () => {
    const s = await startLonghaul(["--replicas", "2"]);
    const base = (v: string) => Number(s.ports[v]);
    expect([...s.pids.keys()].sort()).toEqual(
      ["ingress#0", "invoker#0", "invoker#1", "notifier#0", "notifier#1", "scheduler#0", "scheduler#1"].sort(),
    );
    // Copy 1 listens on the default ports + 10, and says so with its pid.
    expect(s.lines.find((l) => /^\s+scheduler#1\s/.test(l))).toContain(`gRPC 127.0.0.1:${base("SCHEDULER_GRPC_PORT") + 10}`);
    expect(s.lines.find((l) => /^\s+invoker#1\s/.test(l))).toContain(`metrics :${base("INVOKER_METRICS_PORT") + 10}`);

    const api = gateway(`http://127.0.0.1:${s.ports.LONGHAUL_HTTP_PORT}`, API_KEY);
    expect((await api.putApp("hold", { url: app.url })).status).toBeLessThan(300);

    // kill -9 of one copy: a line says it is started again; the rest keep serving.
    const victim = s.pids.get("invoker#1")!;
    const others = [...s.pids].filter(([k]) => k !== "invoker#1").map(([, pid]) => pid);
    const mark = s.lines.length;
    process.kill(victim, "SIGKILL");
    await s.line(/invoker#1 exited unexpectedly \(code null, signal SIGKILL\); starting it again in 1 s/, mark);
    const submitted = await api.call("POST", "/dev/hold/quick?async=true", "x");
    expect(submitted.status).toBe(202);
    const back = await s.line(/invoker#1 started again: pid (\d+), gRPC 127\.0\.0\.1:(\d+)/, mark);
    expect(Number(back[1])).not.toBe(victim);
    expect(Number(back[2])).toBe(base("INVOKER_GRPC_PORT") + 10);
    expect(others.every(alive)).toBe(true);
    expect((await api.finished(submitted.json.run_id)).status).toBe("succeeded");

    // A call held by one invoker, then Ctrl-C.
    const heldRun = await api.call("POST", "/dev/hold/hold?async=true", "x");
    expect(heldRun.status).toBe(202);
    await eventually(async () => held.length === 1, 20_000, "the app to hold the call");
    const stopMark = s.lines.length;
    s.proc.kill("SIGINT");
    await s.line(/SIGINT: stopping/, stopMark);
    // The gateway, the notifiers and the idle invoker stop; the invoker holding the
    // call and the schedulers (which it reports to) stay.
    const exitedCopy = (k: string) => s.line(new RegExp(`${k}\\s.*\\[mesh\\] exited`), stopMark);
    await Promise.all(["ingress#0", "notifier#0", "notifier#1"].map(exitedCopy));
    const idle = await Promise.race(["invoker#0", "invoker#1"].map((k) => exitedCopy(k).then(() => k)));
    const holder = idle === "invoker#0" ? "invoker#1" : "invoker#0";
    expect(alive(s.pids.get(holder)!)).toBe(true);
    expect(alive(s.pids.get("scheduler#0")!) && alive(s.pids.get("scheduler#1")!)).toBe(true);
    expect(await runStatus(heldRun.json.run_id)).toBe("running");

    // The call ends: its outcome is recorded, then everything stops.
    held.splice(0).forEach((r) => r());
    expect(await s.exited).toBe(0);
    expect(await runStatus(heldRun.json.run_id)).toBe("succeeded");
    expect(s.lines.some((l) => /\[longhaul\] stopped/.test(l))).toBe(true);
    for (const pid of s.pids.values()) await eventually(async () => !alive(pid), 10_000, `pid ${pid} gone`);
  });

  it("a second Ctrl-C stops at once, the held call included", async () => {
    const s = await startLonghaul([]);
    expect([...s.pids.keys()].sort()).toEqual(["ingress#0", "invoker#0", "notifier#0", "scheduler#0"]);
    const api = gateway(`http://127.0.0.1:${s.ports.LONGHAUL_HTTP_PORT}`, API_KEY);
    const run = await api.call("POST", "/dev/hold/hold?async=true", "x");
    expect(run.status).toBe(202);
    await eventually(async () => held.length === 1, 20_000, "the app to hold the call");
    const mark = s.lines.length;
    s.proc.kill("SIGINT");
    await s.line(/SIGINT: stopping/, mark);
    await s.line(/notifier#0\s.*\[mesh\] exited/, mark);
    expect(alive(s.pids.get("invoker#0")!)).toBe(true);
    s.proc.kill("SIGINT");
    expect(await s.exited).toBe(130);
    expect(s.lines.some((l) => /SIGINT again: killing every service now/.test(l))).toBe(true);
    for (const pid of s.pids.values()) await eventually(async () => !alive(pid), 10_000, `pid ${pid} gone`);
    held.splice(0).forEach((r) => r());
  });
});
