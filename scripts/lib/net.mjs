// Small TCP helpers shared by the dev scripts: free ports, reachability checks
// and readiness loops. No dependencies beyond node's own modules.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

/**
 * Ports handed out below the kernel's ephemeral range (32768-60999 on Linux):
 * a port from bind :0 is an ephemeral one, and until the service that is to
 * listen on it starts, any outgoing connection on the machine may take it as
 * its local port (parallel test files make thousands). Below that range only
 * an explicit bind takes a port, so the race is with other pickers only.
 * 10000-19999 is left to tests that choose fixed ports themselves
 * (tests/start-replicas.test.ts), so that the two never meet.
 */
const PICK_FROM = 20_000;
const PICK_TO = 32_000;

/** Whether 127.0.0.1:port can be bound now. */
function canBind(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen({ host: "127.0.0.1", port }, () => server.close(() => resolve(true)));
  });
}

/**
 * Ports handed out on this machine, one file each: a port is handed out once
 * in RESERVATION_MS, whichever process asks. Between the pick and the bind of
 * the service that is given it (seconds: migrations run first) another
 * picker would otherwise take it too: two test meshes starting at once drew
 * the same port now and then (EADDRINUSE in CI).
 */
const RESERVED_DIR = path.join(os.tmpdir(), "longhaul-ports");
const RESERVATION_MS = 15 * 60_000;

/** Takes `port` for this process for RESERVATION_MS; false when another took it first. */
function reserve(port) {
  const file = path.join(RESERVED_DIR, String(port));
  try {
    fs.mkdirSync(RESERVED_DIR, { recursive: true });
    fs.closeSync(fs.openSync(file, "wx"));
    return true;
  } catch (err) {
    if (err?.code !== "EEXIST") return true; // nowhere to record it: the bind check alone decides
  }
  try {
    if (Date.now() - fs.statSync(file).mtimeMs < RESERVATION_MS) return false;
    const now = new Date();
    fs.utimesSync(file, now, now); // an old reservation, taken over
    return true;
  } catch {
    return false;
  }
}

/**
 * A port that was free a moment ago on 127.0.0.1, chosen at random below the
 * ephemeral range (see PICK_FROM) and handed out to no other picker on this
 * machine for a while (reserve).
 */
export async function freePort() {
  for (let i = 0; i < 200; i++) {
    const port = PICK_FROM + Math.floor(Math.random() * (PICK_TO - PICK_FROM));
    if (reserve(port) && (await canBind(port))) return port;
  }
  throw new Error(`no free port found between ${PICK_FROM} and ${PICK_TO}`);
}

/** True when something accepts a TCP connection at host:port within timeoutMs. */
export function canConnect(host, port, timeoutMs = 1500) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    socket.once("timeout", () => done(false));
  });
}

/**
 * True when the first server of a URL (`postgres://…`, `nats://a:4222,b:4222`)
 * accepts TCP. A malformed URL counts as not answering.
 */
export async function urlAnswers(url, defaultPort) {
  let u;
  try {
    u = new URL(url.split(",")[0].trim());
  } catch {
    return false;
  }
  const host = u.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1";
  return canConnect(host, Number(u.port || defaultPort));
}

/**
 * Waits until host:port accepts TCP. `alive()` (optional) is asked between
 * tries so that a server that died is reported at once, not after the timeout.
 */
export async function waitForTcp(host, port, { timeoutMs = 30_000, what = `${host}:${port}`, alive } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await canConnect(host, port, 500)) return;
    if (alive && !alive()) throw new Error(`${what} exited before it accepted connections`);
    if (Date.now() > deadline) throw new Error(`${what} did not accept connections within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
