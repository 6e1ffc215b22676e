// A diagnostic preload for the services under the bench (never loaded by
// default): `BENCH_LONGHAUL_NODE_ARGS="--import ./tests/bench/lib/stall-log.mjs"`.
// Each process appends to $STALL_LOG_DIR/<pid>-<service>.log (default
// /tmp/longhaul-stalls) a line per garbage collection of 5 ms or more and per
// event-loop stall of 20 ms or more (a 10-ms timer that fired that much
// late), stamped in ms of CLOCK_MONOTONIC: the clock of clock.mjs and of
// BENCH_SLOW_FILE, so slow accepts can be laid beside them.
import fs from "node:fs";
import path from "node:path";
import { PerformanceObserver, constants } from "node:perf_hooks";

const dir = process.env.STALL_LOG_DIR ?? "/tmp/longhaul-stalls";
fs.mkdirSync(dir, { recursive: true });
const service = /services\/([^/]+)\//.exec(process.argv[1] ?? "")?.[1] ?? path.basename(process.argv[1] ?? "node");
const file = path.join(dir, `${process.pid}-${service}.log`);
const now = () => Number(process.hrtime.bigint()) / 1e6;
const lines = [];
const note = (what) => lines.push(`${now().toFixed(1)} ${what}`);
const flush = () => {
  if (lines.length === 0) return;
  fs.appendFileSync(file, `${lines.join("\n")}\n`);
  lines.length = 0;
};
setInterval(flush, 1000).unref();
process.on("exit", flush);

const KINDS = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weak-callbacks",
};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.duration >= 5) note(`gc ${KINDS[e.detail?.kind] ?? e.detail?.kind} ${e.duration.toFixed(1)}`);
}).observe({ entryTypes: ["gc"] });

let last = now();
setInterval(() => {
  const t = now();
  const late = t - last - 10;
  if (late >= 20) note(`stall ${late.toFixed(1)}`);
  last = t;
}, 10).unref();
