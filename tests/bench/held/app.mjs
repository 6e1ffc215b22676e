// One process of the held-calls benchmark's fake app (forked by run.mjs,
// several of them on several ports: one process could not hold 16,000 server
// sockets beside anything else under the 20,000 open-file limit).
//
//   /hold/...   held until the parent sends {"cmd":"release"}, then 200 "done"
//   /quick/...  answered at once, 200 "ok"
//
// IPC: {"cmd":"count"} → {"type":"count", held, closedEarly, quick};
// {"cmd":"release"} → answers every held call → {"type":"released", n}.
import { createServer } from "node:http";

const held = new Set();
let closedEarly = 0;
let quick = 0;

const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    if (req.url?.startsWith("/quick")) {
      quick += 1;
      res.end("ok");
      return;
    }
    held.add(res);
    res.once("close", () => {
      // Closed before we answered: the caller gave up on a held call.
      if (held.delete(res)) closedEarly += 1;
    });
  });
});
// None of Node's server timeouts may cut a held call.
server.requestTimeout = 0;
server.headersTimeout = 0;
server.keepAliveTimeout = 60_000;

process.on("message", (msg) => {
  if (msg?.cmd === "count") process.send?.({ type: "count", held: held.size, closedEarly, quick });
  if (msg?.cmd === "release") {
    const all = [...held];
    held.clear();
    for (const res of all) res.end("done");
    process.send?.({ type: "released", n: all.length });
  }
});
process.on("disconnect", () => process.exit(0));

// somaxconn is 4096 here: the deepest accept queue the kernel grants.
server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, () => {
  process.send?.({ type: "listening", port: server.address().port });
});
