// Small TCP helpers shared by the dev scripts: free ports, reachability checks
// and readiness loops. No dependencies beyond node:net.
import net from "node:net";

/**
 * A port that was free a moment ago on 127.0.0.1: bind :0, read, close.
 * A race with another process is possible but rare; callers that spawn a
 * server on it detect an early exit and retry.
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      const address = server.address();
      server.close(() => resolve(address.port));
    });
  });
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
