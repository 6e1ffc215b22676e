#!/usr/bin/env node
// Usage: node tests/bench/gc-summary.mjs FILE...
//
// Sums what the garbage collector did, per file, for the two diagnostics of
// the bench README's thirteenth pass:
// - a service's log written under `--trace-gc-nvp` (`bench:profile
//   --node-args="--trace-gc-nvp"`, logs in <out>/logs): per scavenge the
//   pause, what it allocated since the last one, what survived and what was
//   promoted, then the sums; a service whose scavenges promote nearly all
//   they copied keeps objects for seconds;
// - a .heapprofile of lib/survivors.mjs: the sampled bytes that outlived a
//   scavenge (all that was allocated with SURVIVORS_ALL=1), by package, by
//   frame and by the last frames of their stacks.
// Figures are printed, never asserted.
import { readFileSync } from "node:fs";
import path from "node:path";
import { scavenges } from "./lib/gc-nvp.mjs";

const MB = 1024 * 1024;
const pct = (part, whole) => `${((100 * part) / (whole || 1)).toFixed(1).padStart(5)} %`;

function nvp(file, text) {
  const rows = scavenges(text);
  console.log(`\n## ${path.basename(file)}: ${rows.length} scavenges`);
  if (rows.length === 0) return;
  console.log("  at ms     pause ms  allocated MB  survived MB  promoted MB");
  for (const r of rows) {
    const cells = [r.pause.toFixed(1), (r.allocated / MB).toFixed(1), (r.survived / MB).toFixed(2), (r.promoted / MB).toFixed(2)];
    console.log(`  ${String(r.at).padStart(8)}  ${cells.map((c, i) => c.padStart([8, 12, 11, 11][i])).join("  ")}`);
  }
  const sum = (k) => rows.reduce((s, r) => s + r[k], 0);
  const over20 = rows.filter((r) => r.pause >= 20).length;
  console.log(
    `  pauses ${sum("pause").toFixed(0)} ms (longest ${Math.max(...rows.map((r) => r.pause)).toFixed(1)}, ${over20} of 20 ms or more); ` +
      `allocated ${(sum("allocated") / MB).toFixed(0)} MB, survived ${pct(sum("survived"), sum("allocated")).trim()}, ` +
      `promoted ${(sum("promoted") / MB).toFixed(1)} MB (${(sum("promoted") / MB / rows.length).toFixed(2)} per scavenge)`,
  );
}

function packageOf(url) {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.includes("/services/")) return `longhaul:${url.split("/services/")[1].split("/")[0]}`;
  if (url.startsWith("node:")) return "node:internal";
  return url || "(native)";
}

function heapProfile(file, profile) {
  const byPackage = new Map();
  const byFrame = new Map();
  const byStack = new Map();
  let total = 0;
  const add = (map, key, bytes) => map.set(key, (map.get(key) ?? 0) + bytes);
  const walk = (node, stack) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const frame = `${functionName || "(anonymous)"} ${url.replace(/.*node_modules\//, "").replace(/.*\/services\//, "")}:${lineNumber + 1}`;
    const here = [...stack, frame];
    if (node.selfSize > 0) {
      total += node.selfSize;
      add(byPackage, packageOf(url), node.selfSize);
      add(byFrame, frame, node.selfSize);
      add(byStack, here.slice(-4).join(" ← "), node.selfSize);
    }
    for (const child of node.children) walk(child, here);
  };
  walk(profile.head, []);
  const top = (map, n) => [...map].sort((a, b) => b[1] - a[1]).slice(0, n);
  console.log(`\n## ${path.basename(file)}: ${(total / MB).toFixed(1)} MB sampled`);
  console.log("by package:");
  for (const [k, v] of top(byPackage, 12)) console.log(`  ${pct(v, total)}  ${k}`);
  console.log("by frame (where the object was allocated):");
  for (const [k, v] of top(byFrame, 20)) console.log(`  ${pct(v, total)}  ${k}`);
  console.log("by stack (the last four frames, innermost last):");
  for (const [k, v] of top(byStack, 12)) console.log(`  ${pct(v, total)}  ${k}`);
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node tests/bench/gc-summary.mjs FILE... (service logs under --trace-gc-nvp, or .heapprofile files)");
  process.exit(2);
}
for (const file of files) {
  const text = readFileSync(file, "utf8");
  if (file.endsWith(".heapprofile")) heapProfile(file, JSON.parse(text));
  else nvp(file, text);
}
