#!/usr/bin/env node
// Usage: node tests/bench/gc-closures.mjs
//
// The smallest program the thirteenth pass (tests/bench/README.md) found
// that keeps short-lived objects past a scavenge: it makes 200 small
// objects a millisecond for 6 s over a 25-MB old generation, each
// dropped at once, and in one variant gives each a fresh closure as a
// property that refers back to it (`o.f = () => o`: the shape of OTel's
// BaseContext, whose methods are closures over `self`). Each variant runs in a child under `--trace-gc-nvp`
// with V8's compiler tiers switched off one by one; the table prints the
// share of allocated bytes its scavenges copied and what they promoted.
// Figures are printed, never asserted.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { scavenges } from "./lib/gc-nvp.mjs";

const MB = 1024 * 1024;

if (process.argv[2] === "child") {
  const withClosure = process.argv[3] === "closure";
  globalThis.oldGeneration = Array.from({ length: 300_000 }, (_, i) => ({ i, s: `x${i}` }));
  let sink;
  const make = () => {
    const o = { a: 1, b: 2 };
    if (withClosure) o.f = () => o;
    return o;
  };
  const started = Date.now();
  const timer = setInterval(() => {
    for (let n = 0; n < 200; n++) {
      sink = make();
      const garbage = [];
      for (let i = 0; i < 20; i++) garbage.push({ i });
      sink = garbage;
    }
    if (Date.now() - started > 6000) clearInterval(timer);
  }, 1);
} else {
  const tiers = [
    ["all tiers", []],
    ["no TurboFan", ["--no-turbofan"]],
    ["no TurboFan, no Maglev", ["--no-turbofan", "--no-maglev"]],
    ["interpreter only", ["--no-turbofan", "--no-maglev", "--no-sparkplug"]],
  ];
  console.log("| objects | tiers | scavenges | kept (survived / allocated) | promoted MB per scavenge |");
  console.log("|---|---|---|---|---|");
  for (const variant of ["plain", "closure"]) {
    for (const [name, flags] of tiers) {
      const out = execFileSync(process.execPath, [...flags, "--trace-gc-nvp", fileURLToPath(import.meta.url), "child", variant], {
        encoding: "utf8",
        maxBuffer: 64 * MB,
      });
      const rows = scavenges(out);
      const n = rows.length;
      const sum = (k) => rows.reduce((total, r) => total + r[k], 0);
      const [allocated, survived, promoted] = [sum("allocated"), sum("survived"), sum("promoted")];
      const kept = ((100 * survived) / (allocated || 1)).toFixed(1);
      const label = variant === "closure" ? "with a closure property" : "plain";
      console.log(`| ${label} | ${name} | ${n} | ${kept} % | ${(promoted / MB / (n || 1)).toFixed(2)} |`);
    }
  }
}
