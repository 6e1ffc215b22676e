// The floor of the held-calls benchmark: a bare undici client in a process of
// its own holding N calls against the same fake app, with the invoker's own
// Agent options (no headers/body timeout, TCP keep-alive) and nothing else:
// no claim, no span, no log, no timer, no heartbeat. What it costs per held
// call is what any Node process pays for an open HTTP call; the invoker's
// figures are read against it. Forked by run.mjs and driven over IPC:
//
//   {"cmd":"warmup", targets}          a few quick calls, so that the code is compiled
//   {"cmd":"sample"}                   → {"type":"sample", rss, heapUsed}
//   {"cmd":"hold", n, targets}         opens n more held calls, round robin over targets
//   {"cmd":"measure", probes, rate, windowMs, targets}
//        → {"type":"measured", rssSamples, heapUsed, eldP99Ms, probeMs: [...] }
//   {"cmd":"wait"}                      → {"type":"done", ok, failed} once every held call answered
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Agent } from "undici";
import { upstreamAgentOptions } from "@longhaul/invoker/adapters/http/upstream-client";

const agent = new Agent(upstreamAgentOptions());
// prom-client's default precision (eventLoopMonitoringPrecision), as on the invoker's /metrics.
const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();

let ok = 0;
let failed = 0;
let opened = 0;
let waiter;

/** One call as the invoker makes it: a small POST body, the whole answer read. */
async function call(url) {
  const u = new URL(url);
  const res = await agent.request({
    origin: u.origin,
    path: u.pathname,
    method: "POST",
    headers: ["content-type", "application/json", "x-longhaul-run-id", "floor"],
    body: Buffer.from('{"prompt":"hold me"}'),
  });
  await res.body.text();
  return res.statusCode;
}

function settle() {
  if (waiter && ok + failed === opened) waiter();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

process.on("message", async (msg) => {
  switch (msg?.cmd) {
    case "warmup":
      for (let i = 0; i < 50; i++) await call(`${msg.targets[i % msg.targets.length]}/quick/warmup`);
      process.send({ type: "warm" });
      return;
    case "sample": {
      const m = process.memoryUsage();
      process.send({ type: "sample", rss: m.rss, heapUsed: m.heapUsed });
      return;
    }
    case "hold":
      for (let i = 0; i < msg.n; i++) {
        opened += 1;
        call(`${msg.targets[i % msg.targets.length]}/hold/floor-${opened}`).then(
          () => {
            ok += 1;
            settle();
          },
          () => {
            failed += 1;
            settle();
          },
        );
        // A pause now and then, as claims arrive in batches and not all at once.
        if (i % 256 === 255) await sleep(0);
      }
      process.send({ type: "holding", opened });
      return;
    case "measure": {
      eld.reset();
      const heapAtStart = process.memoryUsage().heapUsed;
      const rssSamples = [];
      const sampler = setInterval(() => rssSamples.push(process.memoryUsage().rss), 1000);
      const probeMs = [];
      const t0 = performance.now();
      const probes = [];
      // Open loop: probe i is due at t0 + i/rate, and its latency counts from then.
      for (let i = 0; i < msg.probes; i++) {
        const due = t0 + (i * 1000) / msg.rate;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        probes.push(
          call(`${msg.targets[i % msg.targets.length]}/quick/probe-${i}`).then(
            () => probeMs.push(performance.now() - due),
            () => probeMs.push(NaN),
          ),
        );
      }
      await Promise.all(probes);
      const rest = msg.windowMs - (performance.now() - t0);
      if (rest > 0) await sleep(rest);
      clearInterval(sampler);
      process.send({
        type: "measured",
        rssSamples,
        // Counts garbage not yet collected: the lower of two readings is nearer the live heap.
        heapUsed: Math.min(heapAtStart, process.memoryUsage().heapUsed),
        eldP99Ms: eld.percentile(99) / 1e6,
        probeMs,
      });
      return;
    }
    case "wait":
      await new Promise((r) => {
        waiter = r;
        settle();
      });
      process.send({ type: "done", ok, failed });
      return;
  }
});
process.on("disconnect", () => process.exit(0));
process.send({ type: "ready" });
