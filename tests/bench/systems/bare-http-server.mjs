// The HTTP limit (forked by limits.mjs): a bare node:http server that reads
// the request body and answers 202 {"run_id"} with a fresh uuid, storing
// nothing. No async-request gateway can accept faster on this machine.
import http from "node:http";
import { randomUUID } from "node:crypto";
import { serve } from "../lib/ipc.mjs";

const server = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    const id = randomUUID();
    res.writeHead(202, { "content-type": "application/json", location: `/v1/runs/${id}` });
    res.end(JSON.stringify({ run_id: id }));
  });
});
server.keepAliveTimeout = 120_000;
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
serve({}, { port: server.address().port });
