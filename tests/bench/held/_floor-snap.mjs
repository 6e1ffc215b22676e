import { fork } from "node:child_process";
import v8 from "node:v8";
import { Agent } from "undici";
import { upstreamAgentOptions } from "@longhaul/invoker/adapters/http/upstream-client";
import { heapGrowth } from "../../../services/invoker/src/testing/heap-diff.ts";
const N = 2000;
const app = fork(new URL("./app.mjs", import.meta.url).pathname, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
const port = await new Promise((r) => app.on("message", (m) => m.type === "listening" && r(m.port)));
const agent = new Agent(upstreamAgentOptions());
const call = async (p) => { const res = await agent.request({ origin: `http://127.0.0.1:${port}`, path: p, method: "POST", headers: ["content-type", "application/json"], body: Buffer.from("payload") }); await res.body.text(); };
for (let i = 0; i < 200; i++) await call("/quick/x");
const a = v8.writeHeapSnapshot("/tmp/floor-a.heapsnapshot");
const all = []; for (let i = 0; i < N; i++) all.push(call(`/hold/${i}`));
for (;;) { const c = await new Promise((r) => { app.once("message", r); app.send({ cmd: "count" }); }); if (c.held >= N) break; await new Promise((r) => setTimeout(r, 200)); }
await new Promise((r) => setTimeout(r, 1000));
const b = v8.writeHeapSnapshot("/tmp/floor-b.heapsnapshot");
console.log(heapGrowth(a, b, N, 15));
app.kill("SIGKILL"); process.exit(0);
