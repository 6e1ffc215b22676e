// The soak's fake app, in a process of its own (forked by tests/soak/run.mjs):
// a plain synchronous HTTP handler that answers each call only after the hold
// the query names, as a user's long job would. Three ways of answering, so
// that every idle timeout on the path is crossed:
//
//   mode=silent   nothing at all (no status line, no byte) until the hold is
//                 over, then the whole answer: crosses undici's headersTimeout
//                 (300 s) and any idle-socket timeout.
//   mode=headers  status and headers at once, then no byte until the hold is
//                 over, then the body: crosses undici's bodyTimeout (300 s).
//   mode=trickle  status and headers at once, one line every 60 s, the last
//                 one at the end of the hold: a body that takes the whole hold.
//
// Each call is reported to the parent over IPC (arrival, answer, longest gap
// with no byte sent on the connection, request body as received), and so are
// counts of calls open; `{"cmd":"stats"}` asks for them.
import { createServer } from "node:http";

const TRICKLE_EVERY_MS = 60_000;

/** Calls by run id: what the parent checks at the end. */
const calls = new Map();
let open = 0;

const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const url = new URL(req.url ?? "/", "http://app");
    const runId = String(req.headers["x-longhaul-run-id"] ?? "");
    const mode = url.searchParams.get("mode") ?? "silent";
    const holdMs = Number(url.searchParams.get("hold_ms") ?? "0");
    const arrivedAt = Date.now();
    const call = {
      runId,
      mode,
      holdMs,
      path: url.pathname,
      attempt: Number(req.headers["x-longhaul-attempt"] ?? 0),
      body: Buffer.concat(chunks).toString(),
      arrivedAt,
      answeredAt: 0,
      maxIdleMs: 0,
      closedEarly: false,
      /** Every byte of the body sent, for comparing with the stored result and the webhook. */
      sentBody: "",
    };
    calls.set(runId, call);
    open += 1;
    let lastByteAt = arrivedAt;
    const sent = () => {
      const now = Date.now();
      call.maxIdleMs = Math.max(call.maxIdleMs, now - lastByteAt);
      lastByteAt = now;
    };
    const timers = [];
    const answer = JSON.stringify({ run_id: runId, mode, hold_ms: holdMs, arrived_at: new Date(arrivedAt).toISOString() });

    if (mode === "headers" || mode === "trickle") {
      res.writeHead(200, { "content-type": mode === "trickle" ? "text/plain" : "application/json" });
      res.flushHeaders();
      sent();
    }
    if (mode === "trickle") {
      for (let at = TRICKLE_EVERY_MS; at < holdMs; at += TRICKLE_EVERY_MS) {
        timers.push(
          setTimeout(() => {
            const line = `still working at ${at / 1000} s\n`;
            res.write(line);
            call.sentBody += line;
            sent();
          }, at),
        );
      }
    }
    timers.push(
      setTimeout(() => {
        if (mode === "silent") res.writeHead(200, { "content-type": "application/json" });
        const last = mode === "trickle" ? `done ${answer}\n` : answer;
        res.end(last);
        call.sentBody += last;
        sent();
        call.answeredAt = Date.now();
        open -= 1;
        process.send?.({ type: "answered", call });
      }, holdMs),
    );
    // The caller went away before the answer: that is the failure the soak looks for.
    res.on("close", () => {
      if (call.answeredAt === 0) {
        call.closedEarly = true;
        open -= 1;
        for (const t of timers) clearTimeout(t);
        process.send?.({ type: "closed-early", call: { ...call, closedAt: Date.now() } });
      }
    });
    process.send?.({ type: "arrived", call });
  });
});
// A plain app; Node's own server timeouts concern receiving the request,
// which arrives at once, but none of them should get a say in this test.
server.requestTimeout = 0;
server.headersTimeout = 0;
server.keepAliveTimeout = 60_000;

process.on("message", (msg) => {
  if (msg?.cmd === "stats") process.send?.({ type: "stats", open, calls: calls.size });
  if (msg?.cmd === "stop") server.close(() => process.exit(0));
});
process.on("disconnect", () => process.exit(0));

server.listen(0, "127.0.0.1", () => {
  process.send?.({ type: "listening", port: server.address().port });
});
