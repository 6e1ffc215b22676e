// How one system is measured, start to stop:
//   warm-up → accept-throughput search → steady run at 50 % of that maximum
//   (accept latency, CPU per 1,000 runs) → fixed-rate run whose runs all
//   finish (dispatch and webhook latency) → [job systems] the same without
//   webhooks → stop. Postgres commits are counted over the last two (commits.mjs).
// Each phase is bounded in count and time (MODES).
import { now, sleep } from "./clock.mjs";
import { commitLedger } from "./commits.mjs";
import { cpuMeter, rssSampler } from "./proc-cpu.mjs";
import { acceptLatencies, arrivalLatencies, arrivalTimes, judgeStep, summary } from "./stats.mjs";

/** Durations and rates of each mode; the full run fits 10 minutes on 2 cores, the quick one 1 minute. */
export const MODES = {
  full: {
    // At the first step's rate: a 2-s warm-up at 100/s left the first 200/s
    // step failing on start-up costs (p99 190-500 ms for Longhaul and pg-boss
    // alike), and the retry of a failed step then decided the figure.
    warmup: { rate: 200, ms: 4000 },
    stepMs: 3000,
    startRate: 200,
    factor: 1.5,
    maxRampSteps: 12,
    confirmFailures: true,
    bisectSteps: 2,
    maxRate: 30_000,
    drainMs: 5000,
    processDrainMs: 20_000,
    quietTimeoutMs: 60_000,
    quietIntervalMs: 1000,
    pauseMs: 500,
    steadyMs: 5000,
    latencyRate: 100,
    latencyMs: 6000,
    noWebhookMs: 4000,
    statsSettleMs: 11_000, // Postgres backends flush their statistics when idle after at most 10 s
    idleWindowMs: 5000,
    floorRate: 10,
    idleMs: 30_000, // the idle phase after the load
    longCalls: { count: 2000, holdMs: 60_000, concurrency: 64 },
  },
  quick: {
    warmup: null, // quick figures are not compared, so no warm-up
    stepMs: 400,
    startRate: 100,
    factor: 3,
    maxRampSteps: 3,
    confirmFailures: false,
    bisectSteps: 1,
    maxRate: 30_000,
    drainMs: 3000,
    processDrainMs: 3000,
    quietTimeoutMs: 3000,
    quietIntervalMs: 300,
    pauseMs: 100,
    steadyMs: 600,
    latencyRate: 50,
    latencyMs: 1000,
    noWebhookMs: 500,
    statsSettleMs: 300, // too short for exact counts: quick figures are a smoke check only
    idleWindowMs: 300,
    floorRate: 10,
    idleMs: 2000,
    longCalls: { count: 100, holdMs: 3000, concurrency: 64 },
  },
};

/**
 * Waits until no app call or webhook arrived for `intervalMs` (bounded): the
 * system has worked off what it accepted.
 */
async function waitQuiet(arrivals, timeoutMs, intervalMs) {
  const until = now() + timeoutMs;
  let last = -1;
  while (now() < until) {
    const seen = (await arrivals.count("processed")) + (await arrivals.count("dispatched"));
    if (seen === last) return true;
    last = seen;
    await sleep(intervalMs);
  }
  return false;
}

/**
 * The idle phase: no traffic for `cfg.idleMs` after the load; CPU per process
 * (percent of one core) and Postgres commits per second of its databases.
 */
async function measureIdle(sys, env) {
  const { pg, cfg } = env;
  const meter = cpuMeter([...sys.processes, ...env.infraProcs]);
  const dbs = Object.values(sys.databases ?? {});
  const before = dbs.length > 0 ? await pg.commits(dbs) : {};
  const t0 = now();
  await meter.start();
  await sleep(cfg.idleMs);
  const cpu = await meter.stop();
  const after = dbs.length > 0 ? await pg.commits(dbs) : {};
  const seconds = (now() - t0) / 1000;
  const commitsPerSecond = Object.fromEntries(
    Object.entries(sys.databases ?? {}).map(([part, db]) => [part, (after[db] - before[db]) / seconds]),
  );
  return {
    seconds,
    cpuPctOfCore: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, (100 * v) / seconds])),
    commitsPerSecond,
    commitsPerSecondTotal: Object.values(commitsPerSecond).reduce((a, b) => a + b, 0),
  };
}

/**
 * The long-call scenario (the workload Longhaul exists for), on a fresh start
 * of the system (`ctx.longCalls` set: the peers raise their concurrency to
 * the number of calls): `count` runs whose app answers after `holdMs`,
 * submitted as fast as the system accepts them (closed loop, `concurrency`
 * submits open at once); then the time until every webhook arrived, the RSS
 * of the system's own processes (its peak over the scenario, and once while
 * every call is held: midway between the last submit and the first call's
 * end), and CPU per held call (own processes, Postgres, nats-server).
 */
export async function measureLongCalls(spec, env) {
  const { loadgen, sinks, cfg, log } = env;
  const lc = cfg.longCalls;
  const result = { name: spec.name, label: spec.label, count: lc.count, holdSeconds: lc.holdMs / 1000 };
  const sys = await spec.start({ ...env.startCtx, longCalls: lc.count });
  result.settings = sys.settings;
  try {
    await loadgen.request("configure", { ...sys.target, appDelayMs: lc.holdMs });
    await sinks.request("collect");
    const own = sys.processes.map((p) => p.name);
    const meter = cpuMeter([...sys.processes, ...env.infraProcs]);
    const rss = rssSampler(sys.processes);
    await meter.start();
    rss.start();
    log(`${spec.name}: ${lc.count} long calls (${lc.holdMs / 1000} s each)`);
    const sent = await loadgen.request("burst", { count: lc.count, concurrency: lc.concurrency, timeoutMs: 10 * 60_000 });
    // Every webhook, bounded: the hold, plus what it took to submit them all, plus 2 minutes.
    const until = now() + lc.holdMs + sent.seconds * 1000 + 120_000;
    // All calls are held from the last submit until the first call ends.
    const heldAt = sent.seconds * 1000 < lc.holdMs ? sent.startedAt + (sent.seconds * 1000 + lc.holdMs) / 2 : NaN;
    let held;
    let hooks = 0;
    while (now() < until) {
      if (!held && now() >= heldAt) held = rss.sample();
      hooks = (await sinks.request("counts")).hooks;
      if (hooks >= sent.accepted) break;
      await sleep(250);
    }
    const cpu = await meter.stop();
    const mem = rss.stop();
    const got = await sinks.request("collect");
    const last = got.hooks.times.length > 0 ? Math.max(...got.hooks.times) : NaN;
    const ownCpu = own.reduce((s, k) => s + (cpu[k] ?? 0), 0);
    const perCallMs = (v) => (sent.accepted > 0 ? (1000 * v) / sent.accepted : NaN);
    const perCallKiB = (bytes) => (sent.accepted > 0 ? bytes / 1024 / sent.accepted : NaN);
    Object.assign(result, {
      accepted: sent.accepted,
      failed: sent.failed,
      submitSeconds: sent.seconds,
      finished: got.hooks.ids.length,
      allFinishedSeconds: (last - sent.startedAt) / 1000,
      peakRssMiB: mem.peakSum / 2 ** 20,
      rssKiBPerCall: perCallKiB(mem.peakSum - mem.firstSum),
      // NaN when the submits took longer than a hold (no moment holds them all).
      heldRssKiBPerCall: held ? perCallKiB(held.sum - mem.firstSum) : NaN,
      // The same by process: what grew in each while every call was held (a burst's heap growth included).
      heldRssKiBPerCallByProcess: Object.fromEntries(Object.entries(held?.byProcess ?? {}).map(([k, v]) => [k, perCallKiB(v - mem.first[k])])),
      rssPeakByProcessMiB: Object.fromEntries(Object.entries(mem.peak).map(([k, v]) => [k, v / 2 ** 20])),
      cpuMsPerCall: {
        own: perCallMs(ownCpu),
        postgres: perCallMs(cpu.postgres ?? 0),
        nats: perCallMs(cpu["nats-server"] ?? 0),
        box: perCallMs(ownCpu + (cpu.postgres ?? 0) + (cpu["nats-server"] ?? 0)),
      },
    });
    return result;
  } finally {
    await loadgen.request("close");
    await sys.stop();
  }
}

/**
 * Measures one system.
 * @param {import("../systems/types.mjs").SystemSpec} spec
 * @param {object} env  loadgen, sinks (children), pg (admin), cfg (a MODES entry), startCtx, infra + harness
 *   process lists, log, appDelayMs (how long the fake app takes to answer each call)
 */
export async function measureSystem(spec, env) {
  const { loadgen, sinks, pg, cfg, log } = env;
  const result = { name: spec.name, label: spec.label, kind: spec.kind };
  const t0 = now();
  const sys = await spec.start(env.startCtx);
  result.settings = sys.settings;
  result.startSeconds = (now() - t0) / 1000;
  let stopped = false;
  // The load generator lets go of its connections first: a gateway that drains
  // open connections at SIGTERM would otherwise wait for idle keep-alive sockets.
  const stop = async () => {
    if (!stopped) {
      stopped = true;
      await loadgen.request("close");
      await sys.stop();
    }
  };
  try {
    await loadgen.request("configure", { ...sys.target, appDelayMs: env.appDelayMs });
    const arrivals = {
      collect: async () => {
        if (sys.collect) return sys.collect();
        const a = await sinks.request("collect");
        return { dispatch: a.app, processed: a.hooks };
      },
      count: async (what) => {
        if (sys.counts) return (await sys.counts())[what];
        const c = await sinks.request("counts");
        return what === "processed" ? c.hooks : c.app;
      },
    };

    /** One open-loop run; waits until its accepted runs are processed, or dispatched (bounded). */
    const runAt = async (rate, ms, waitFor = "processed") => {
      await arrivals.collect(); // forget stragglers of earlier runs
      const count = Math.max(10, Math.round((rate * ms) / 1000));
      const run = await loadgen.request("run", { rate, count, drainMs: cfg.drainMs });
      const accepted = run.done.filter((v) => !Number.isNaN(v)).length;
      let drained = true;
      if (sys.processed) {
        const until = now() + cfg.processDrainMs;
        while ((await arrivals.count(waitFor)) < accepted && now() < until) await sleep(50);
        drained = (await arrivals.count(waitFor)) >= accepted;
      }
      const left = await loadgen.request("settle", { timeoutMs: cfg.processDrainMs });
      const got = sys.processed ? await arrivals.collect() : undefined;
      return { run, accepted, drained: drained && left === 0, got };
    };

    if (cfg.warmup) {
      log(`${spec.name}: warm-up`);
      await runAt(cfg.warmup.rate, cfg.warmup.ms);
    }

    // Search: multiply the rate while steps pass, then bisect between the last pass and the first failure.
    const steps = [];
    const tryRate = async (rate) => {
      const { run, got, drained } = await runAt(rate, cfg.stepMs);
      const verdict = judgeStep(run, rate, got ? arrivalTimes(run, got.processed) : null);
      if (!drained) verdict.note = "backlog not drained before the next step";
      steps.push(verdict);
      log(`${spec.name}: ${verdict.rate}/s ${verdict.pass ? "pass" : `fail (${verdict.reason})`}, p99 ${verdict.p99.toFixed(1)} ms`);
      await sleep(cfg.pauseMs);
      return verdict.pass;
    };
    let best = 0;
    let fail = Infinity;
    let rate = cfg.startRate;
    for (let i = 0; i < cfg.maxRampSteps && rate <= cfg.maxRate; i++, rate *= cfg.factor) {
      // A failure is tried once more before the ramp ends: one stall of a
      // busy machine should not decide the figure.
      if ((await tryRate(rate)) || (cfg.confirmFailures && (await tryRate(rate)))) best = rate;
      else {
        fail = rate;
        break;
      }
    }
    for (let i = 0; i < cfg.bisectSteps && Number.isFinite(fail); i++) {
      const mid = best > 0 ? Math.sqrt(best * fail) : fail / 2;
      if (await tryRate(mid)) best = mid;
      else fail = mid;
    }
    // Nothing passed yet: halve down to the floor rate, so a slow system still gets a figure.
    while (best === 0 && fail / 2 >= cfg.floorRate) {
      const lower = fail / 2;
      if (await tryRate(lower)) best = lower;
      else fail = lower;
    }
    const limiting = steps.findLast((s) => !s.pass && Math.round(fail) === s.rate);
    result.search = {
      steps,
      maxRate: Math.round(best),
      limitedBy: Number.isFinite(fail) ? (limiting?.reason ?? "") : `none: the ramp ended at ${Math.round(best)}/s`,
    };
    // A failed step can leave runs accepted but unprocessed; later phases
    // measure CPU and commits, so they start only once the system is quiet.
    result.quietAfterSearch = sys.processed ? await waitQuiet(arrivals, cfg.quietTimeoutMs, cfg.quietIntervalMs) : true;
    if (!result.quietAfterSearch) log(`${spec.name}: still processing after ${cfg.quietTimeoutMs} ms; later figures include that backlog`);

    // With no step passed (an overloaded machine), the later phases still run, at a floor rate, and say so.
    const base = best > 0 ? best : 2 * cfg.floorRate;
    if (best === 0) log(`${spec.name}: no step passed; later phases at ${cfg.floorRate}/s`);

    // Steady: 50 % of its own maximum; accept latency, and CPU until every run is processed.
    const meter = cpuMeter([...sys.processes, ...env.infraProcs, ...env.harnessProcs]);
    const steadyRate = base / 2;
    log(`${spec.name}: steady at ${Math.round(steadyRate)}/s`);
    await meter.start();
    const steady = await runAt(steadyRate, cfg.steadyMs);
    const cpu = await meter.stop();
    const own = sys.processes.map((p) => p.name);
    const per1000 = (seconds) => (steady.accepted > 0 ? (seconds / steady.accepted) * 1000 : null);
    result.steady = {
      rate: Math.round(steadyRate),
      accepted: steady.accepted,
      drained: steady.drained,
      accept: summary(acceptLatencies(steady.run)),
      cpuSeconds: cpu,
      cpuPer1000: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, per1000(v)])),
      ownCpuPer1000: own.length > 0 ? per1000(own.reduce((s, k) => s + (cpu[k] ?? 0), 0)) : null,
      // accept→app and →webhook at half the maximum (the latency run below is at a fixed, lower rate).
      dispatch: steady.got?.dispatch ? summary(arrivalLatencies(steady.run, steady.got.dispatch)) : null,
      webhook: sys.processed === "hooks" && steady.got ? summary(arrivalLatencies(steady.run, steady.got.processed)) : null,
    };
    // Whole-box CPU per run: the system's own processes, Postgres and nats-server (ms per run = s per 1,000 runs).
    result.steady.boxCpuMsPerRun = per1000(own.reduce((s, k) => s + (cpu[k] ?? 0), 0) + (cpu.postgres ?? 0) + (cpu["nats-server"] ?? 0));

    if (sys.dispatch) {
      const latRate = Math.min(cfg.latencyRate, base / 2);
      const ledger = sys.databases ? await commitLedger(pg, sys.databases, cfg) : undefined;
      log(`${spec.name}: latency run at ${Math.round(latRate)}/s`);
      const lat = await runAt(latRate, cfg.latencyMs);
      const dispatchArrivals = lat.got?.dispatch ?? (await arrivals.collect()).dispatch;
      result.latency = {
        rate: Math.round(latRate),
        accepted: lat.accepted,
        drained: lat.drained,
        accept: summary(acceptLatencies(lat.run)),
        dispatch: summary(arrivalLatencies(lat.run, dispatchArrivals)),
        webhook: sys.processed === "hooks" ? summary(arrivalLatencies(lat.run, lat.got.processed)) : null,
      };
      if (ledger) {
        // Once more without a webhook: the async path proper (submit, claim, complete) alone.
        const withWebhook = await ledger.close(lat.accepted);
        await loadgen.request("configure", { ...sys.targetNoWebhook, appDelayMs: env.appDelayMs });
        log(`${spec.name}: run without webhooks at ${Math.round(latRate)}/s`);
        const bare = await runAt(latRate, cfg.noWebhookMs, "dispatched");
        const withoutWebhook = await ledger.close(bare.accepted);
        result.commits = { withWebhook, withoutWebhook };
      }
    }
    if (spec.kind === "job" && cfg.idleMs > 0) {
      log(`${spec.name}: idle for ${cfg.idleMs / 1000} s`);
      result.idle = await measureIdle(sys, env);
    }
    if (sys.otlp) result.otlp = await sinks.request("otlp");
    return result;
  } finally {
    await stop();
  }
}
