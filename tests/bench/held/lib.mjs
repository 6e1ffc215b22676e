// Small helpers of the held-calls benchmark: child processes over IPC,
// /proc and /metrics readings, percentiles, the printed table.
import { fork } from "node:child_process";
import fs from "node:fs";

/** Forks `script` with IPC; resolves with a handle once it sent `{type: readyType}`. */
export async function forkChild(script, readyType, { execArgv = [] } = {}) {
  const child = fork(script, [], { stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv });
  const waiting = new Map();
  let first;
  const ready = new Promise((resolve, reject) => {
    child.once("exit", (code, signal) => reject(new Error(`${script} exited (code ${code}, signal ${signal})`)));
    child.on("message", (m) => {
      if (m.type === readyType) resolve(m);
      const w = waiting.get(m.type);
      if (w) {
        waiting.delete(m.type);
        w(m);
      }
    });
  });
  first = await ready;
  return {
    pid: child.pid,
    first,
    /** Sends `msg` and resolves with the next message of type `type`. */
    ask(msg, type) {
      return new Promise((resolve) => {
        waiting.set(type, resolve);
        child.send(msg);
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
    },
  };
}

/** Resident set size of a process, in bytes (VmRSS of /proc/<pid>/status). */
export function rssOf(pid) {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
  return kb * 1024;
}

/** Open file descriptors of a process. */
export function fdsOf(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

/** Scrapes a Prometheus text endpoint into `{ name: value }` (first series of each name). */
export async function scrape(url) {
  const text = await (await fetch(url)).text();
  const out = {};
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && !(m[1] in out)) out[m[1]] = Number(m[3]);
  }
  return out;
}

/** The p-th percentile (0–100); NaN (a failure) counts as +Infinity. */
export function percentile(values, p) {
  const sorted = Float64Array.from(values, (v) => (Number.isNaN(v) ? Infinity : v)).sort();
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function median(values) {
  return percentile(values, 50);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every `everyMs` until it returns truthy or `timeoutMs` passed; returns the last value. */
export async function until(fn, timeoutMs, everyMs = 500) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v.done || Date.now() >= end) return v;
    await sleep(everyMs);
  }
}

/** Runs `count` tasks with at most `concurrency` at once. */
export async function pool(count, concurrency, task) {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** Open loop: probe i is sent at t0 + i/rate; its latency counts from then (NaN when it failed). */
export async function openLoop(count, rate, send) {
  const t0 = performance.now();
  const all = [];
  const ms = [];
  for (let i = 0; i < count; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    all.push(send(i).then((ok) => ms.push(ok ? performance.now() - due : NaN), () => ms.push(NaN)));
  }
  await Promise.all(all);
  return ms;
}

export function loadavg() {
  return fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

export const kb = (bytes) => (Number.isFinite(bytes) ? (bytes / 1024).toFixed(1) : "-");
export const mb = (bytes) => (Number.isFinite(bytes) ? (bytes / 1024 / 1024).toFixed(0) : "-");
export const msf = (v) => (Number.isFinite(v) ? (v < 10 ? v.toFixed(1) : v.toFixed(0)) : "-");

export function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => `| ${r.map((v, i) => String(v).padEnd(widths[i])).join(" | ")} |`;
  return [line(rows[0]), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.slice(1).map(line)].join("\n");
}
