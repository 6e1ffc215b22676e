// The fake app and the webhook receiver, in a process of their own (forked by
// run.mjs), on loopback. Each stamps the arrival of every request on the
// shared clock (clock.mjs), keyed by the run id the caller names:
// `x-longhaul-run-id` (Longhaul) or `x-run-id` (the peers' workers).
//
// Also an OTLP/HTTP receiver for the row with trace export on.
//
// The app is a plain synchronous handler: it answers 200 with a small JSON
// body after the delay the request asks for in `x-bench-delay-ms` (0: at once).
import http from "node:http";
import { now } from "./clock.mjs";
import { serve } from "./ipc.mjs";

/** Arrivals since the last collect(): ids and times side by side. */
function recorder() {
  let ids = [];
  let times = [];
  return {
    add(id, t) {
      ids.push(id);
      times.push(t);
    },
    get count() {
      return ids.length;
    },
    take() {
      const out = { ids, times: Float64Array.from(times) };
      ids = [];
      times = [];
      return out;
    },
  };
}

const runIdOf = (req) => String(req.headers["x-longhaul-run-id"] ?? req.headers["x-run-id"] ?? "");

function listen(server) {
  // Held calls must not be cut by Node's own server timeouts.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 120_000;
  server.maxRequestsPerSocket = 0;
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server.address().port)));
}

const app = recorder();
const hooks = recorder();
const answer = JSON.stringify({ ok: true, summary: ["revenue up", "costs flat", "outlook stable"] });

const appServer = http.createServer((req, res) => {
  app.add(runIdOf(req), now());
  const delay = Number(req.headers["x-bench-delay-ms"] ?? 0);
  req.resume();
  req.on("end", () => {
    const reply = () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(answer);
    };
    if (delay > 0) setTimeout(reply, delay);
    else reply();
  });
});

const hookServer = http.createServer((req, res) => {
  hooks.add(runIdOf(req), now());
  req.resume();
  req.on("end", () => {
    res.writeHead(204);
    res.end();
  });
});

// An OTLP/HTTP trace receiver (the "OTLP export on" row): takes every export
// request, answers an empty 200 (a valid ExportTraceServiceResponse), counts.
const otlp = { requests: 0, bytes: 0 };
const otlpServer = http.createServer((req, res) => {
  otlp.requests++;
  req.on("data", (c) => (otlp.bytes += c.length));
  req.on("end", () => {
    res.writeHead(200, { "content-type": req.headers["content-type"] ?? "application/x-protobuf" });
    res.end();
  });
});

const appPort = await listen(appServer);
const hookPort = await listen(hookServer);
const otlpPort = await listen(otlpServer);

serve(
  {
    /** How many app calls and webhooks arrived since the last collect(). */
    counts: () => ({ app: app.count, hooks: hooks.count }),
    /** Every arrival since the last collect(), then forgets them. */
    collect: () => ({ app: app.take(), hooks: hooks.take() }),
    /** OTLP export requests and bytes received so far. */
    otlp: () => ({ ...otlp }),
  },
  { appUrl: `http://127.0.0.1:${appPort}`, hookUrl: `http://127.0.0.1:${hookPort}/hook`, otlpUrl: `http://127.0.0.1:${otlpPort}` },
);
