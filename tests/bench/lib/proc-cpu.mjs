// CPU time of processes from /proc (Linux): user + system seconds, so that a
// phase's cost can be charged per process. Also finds the Postgres server
// (postmaster and its backends) and the nats-server the benchmark runs on.
import fs from "node:fs";
import { execFileSync } from "node:child_process";

const TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Fields of /proc/<pid>/stat after the command name; undefined when gone. */
function statFields(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** CPU seconds a live process used so far (its reaped children included when `withChildren`). */
export function cpuSeconds(pid, withChildren = false) {
  const f = statFields(pid);
  if (!f) return NaN;
  // After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
  let ticks = Number(f[11]) + Number(f[12]);
  if (withChildren) ticks += Number(f[13]) + Number(f[14]);
  return ticks / TICKS;
}

function allPids() {
  return fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number);
}

/**
 * CPU seconds of a process tree root plus its live children and reaped ones
 * (Postgres: postmaster + backends). `settled` is false while a child is a
 * zombie: its time is in neither place until the root reaps it.
 */
function treeCpu(rootPid) {
  let total = cpuSeconds(rootPid, true);
  let settled = true;
  for (const pid of allPids()) {
    const f = statFields(pid);
    if (!f || Number(f[1]) !== rootPid) continue;
    if (f[0] === "Z") settled = false;
    else total += cpuSeconds(pid);
  }
  return { total, settled };
}

/** treeCpu, read again (a few times, 20 ms apart) while a child is between exit and reaping. */
export async function treeCpuSeconds(rootPid) {
  let r = treeCpu(rootPid);
  for (let i = 0; i < 10 && !r.settled; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    r = treeCpu(rootPid);
  }
  return r.total;
}

/** The postmaster's pid, from postmaster.pid in the data directory (needs a superuser connection). */
export async function postmasterPid(client) {
  try {
    const dir = (await client.query("show data_directory")).rows[0].data_directory;
    return Number(fs.readFileSync(`${dir}/postmaster.pid`, "utf8").split("\n")[0]);
  } catch {
    return undefined;
  }
}

/** The pid of the nats-server listening on the port of `natsUrl`, if it runs on this machine. */
export function natsServerPid(natsUrl) {
  const port = String(new URL(natsUrl.split(",")[0]).port || 4222);
  const candidates = [];
  for (const pid of allPids()) {
    try {
      if (fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim() !== "nats-server") continue;
      const args = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      const i = args.findIndex((a) => a === "-p" || a === "--port");
      candidates.push({ pid, port: i >= 0 ? args[i + 1] : "4222" });
    } catch {
      // gone meanwhile
    }
  }
  return candidates.find((c) => c.port === port)?.pid;
}

/**
 * A CPU meter over named processes: `start()` then `stop()` gives the
 * seconds each used in between. `tree` entries count their children too.
 * @param {{ name: string, pid: number | undefined, tree?: boolean }[]} procs
 */
export function cpuMeter(procs) {
  const read = async () => {
    const out = {};
    for (const p of procs.filter((x) => x.pid)) out[p.name] = p.tree ? await treeCpuSeconds(p.pid) : cpuSeconds(p.pid);
    return out;
  };
  let before = {};
  return {
    async start() {
      before = await read();
    },
    async stop() {
      const after = await read();
      return Object.fromEntries(Object.keys(before).map((k) => [k, after[k] - before[k]]));
    },
  };
}

/** Resident set size of a live process in bytes (VmRSS), NaN when gone. */
export function rssBytes(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Samples the RSS of named processes every `intervalMs` between start() and
 * stop(): stop() gives each one's first and peak sample, and the peak of
 * their sum (bytes); sample() reads them all now.
 * @param {{ name: string, pid: number | undefined }[]} procs
 */
export function rssSampler(procs, intervalMs = 500) {
  const live = procs.filter((p) => p.pid);
  const first = {};
  const peak = {};
  let peakSum = 0;
  let timer;
  /** Samples every process once: the sum, and each process's RSS by name. */
  const sample = () => {
    let sum = 0;
    const byProcess = {};
    for (const p of live) {
      const v = rssBytes(p.pid);
      if (!Number.isFinite(v)) continue;
      first[p.name] ??= v;
      peak[p.name] = Math.max(peak[p.name] ?? 0, v);
      byProcess[p.name] = v;
      sum += v;
    }
    peakSum = Math.max(peakSum, sum);
    return { sum, byProcess };
  };
  return {
    /** The RSS of every process now, summed and by process (bytes). */
    sample,
    start() {
      sample();
      timer = setInterval(sample, intervalMs);
    },
    stop() {
      clearInterval(timer);
      sample();
      const firstSum = Object.values(first).reduce((s, v) => s + v, 0);
      return { first, peak, firstSum, peakSum };
    },
  };
}
