// The chaos run's app, in the harness's own process: a node:http server on
// loopback that answers each call after `hold_ms` (a query parameter) and
// keeps every call it got by run id (X-Longhaul-Run-Id), with its attempt
// (X-Longhaul-Attempt) and whether the caller closed the connection before
// the answer was sent (a cut call).
import { createServer } from "node:http";

/**
 * @typedef {object} AppCall
 * @property {string} app        first path segment: which registered app sent it
 * @property {number} attempt
 * @property {number} holdMs
 * @property {number} arrivedAt
 * @property {number} answeredAt  0 until answered
 * @property {boolean} cut        the connection closed before the answer was sent
 */

/** Starts the app; `calls` maps run id → every call of that run, in arrival order. */
export async function startChaosApp() {
  /** @type {Map<string, AppCall[]>} */
  const calls = new Map();
  const timers = new Set();
  let open = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://app");
      const runId = String(req.headers["x-longhaul-run-id"] ?? "");
      const holdMs = Number(url.searchParams.get("hold_ms") ?? "0");
      /** @type {AppCall} */
      const call = {
        app: url.pathname.split("/")[1] ?? "",
        attempt: Number(req.headers["x-longhaul-attempt"] ?? 0),
        holdMs,
        arrivedAt: Date.now(),
        answeredAt: 0,
        cut: false,
      };
      calls.set(runId, [...(calls.get(runId) ?? []), call]);
      open += 1;
      const answer = () => {
        timers.delete(timer);
        if (res.destroyed) return;
        call.answeredAt = Date.now();
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ run_id: runId, attempt: call.attempt, hold_ms: holdMs }));
      };
      const timer = setTimeout(answer, holdMs);
      timers.add(timer);
      res.once("close", () => {
        open -= 1;
        if (!res.writableFinished) {
          call.cut = true;
          clearTimeout(timer);
          timers.delete(timer);
        }
      });
    });
  });
  // None of Node's server timeouts may cut a held call.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 120_000;
  await new Promise((resolve) => server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    calls,
    open: () => open,
    close: () =>
      new Promise((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
