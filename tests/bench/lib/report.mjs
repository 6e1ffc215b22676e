// The printed table (figures per system, then Longhaul's targets as ratios
// measured in the same run) and the JSON document with the same and more.
import { fmtMs } from "./stats.mjs";

const fmtNum = (v, digits = 2) => (v === undefined || v === null || Number.isNaN(v) ? "—" : v.toFixed(digits));
const pair = (s) => (s ? `${fmtMs(s.p50)} / ${fmtMs(s.p99)}` : "—");

function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  const line = (r) => `| ${r.map((cell, c) => String(cell).padEnd(widths[c])).join(" | ")} |`;
  return [line(rows[0]), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.slice(1).map(line)].join("\n");
}

/** Commits per run as printed: with a webhook / without one (work only; background apart). */
function commitsCell(r) {
  const c = r.commits;
  if (!c) return "—";
  return `${fmtNum(c.withWebhook.work)} / ${fmtNum(c.withoutWebhook.work)}`;
}

/** One line per system: commits by part and the idle background charged per run. */
function commitLines(results) {
  return results
    .filter((r) => r.commits)
    .map((r) => {
      const w = r.commits.withWebhook;
      const n = r.commits.withoutWebhook;
      const parts = (x) => Object.entries(x.parts).map(([k, p]) => `${k} ${fmtNum(p.work)}`).join(" + ");
      return (
        `  ${r.label}: with webhook ${parts(w)} (${w.runs} runs, +${fmtNum(w.background)} idle background); ` +
        `without ${parts(n)} (${n.runs} runs, +${fmtNum(n.background)} idle)`
      );
    });
}

/** The targets Longhaul is held to, each with the figures it compares and whether it held. */
export function targets(results) {
  const by = Object.fromEntries(results.map((r) => [r.name, r]));
  const lh = by.longhaul;
  const max = (n) => by[n]?.search?.maxRate;
  const out = [];
  const ratio = (what, other, min) => {
    const a = max("longhaul");
    const b = max(other);
    const value = a && b ? a / b : NaN;
    out.push({ target: `accept throughput ≥ ${min}× ${what}`, value: `${fmtNum(value)}× (${a ?? "—"}/s vs ${b ?? "—"}/s)`, met: value >= min });
  };
  ratio("pg-boss build", "pgboss", 1.5);
  ratio("graphile-worker build", "graphile", 1.0);
  ratio("raw INSERT", "raw-insert", 0.8);
  const d = lh?.latency?.dispatch;
  const g = by.graphile?.latency?.dispatch;
  out.push({
    target: "accept→app p50 ≤ graphile-worker's",
    value: `${fmtMs(d?.p50)} ms vs ${fmtMs(g?.p50)} ms`,
    met: d !== undefined && g !== undefined && d.p50 <= g.p50,
  });
  out.push({ target: "accept→app p50 < 10 ms", value: `${fmtMs(d?.p50)} ms`, met: d !== undefined && d.p50 < 10 });
  out.push({ target: "accept→app p99 < 50 ms", value: `${fmtMs(d?.p99)} ms`, met: d !== undefined && d.p99 < 50 });
  // The same at half of each system's own maximum (the steady phase).
  const hd = lh?.steady?.dispatch;
  const hg = by.graphile?.steady?.dispatch;
  out.push({
    target: "at half the maximum: accept→app p50 ≤ graphile-worker's",
    value: `${fmtMs(hd?.p50)} ms @${lh?.steady?.rate ?? "—"}/s vs ${fmtMs(hg?.p50)} ms @${by.graphile?.steady?.rate ?? "—"}/s`,
    met: hd != null && hg != null && hd.p50 <= hg.p50,
  });
  out.push({ target: "at half the maximum: accept→app p99 < 50 ms", value: `${fmtMs(hd?.p99)} ms`, met: hd != null && hd.p99 < 50 });
  const w = lh?.commits?.withWebhook;
  const n = lh?.commits?.withoutWebhook;
  const parts = (x) => Object.entries(x.parts).map(([k, p]) => `${k} ${fmtNum(p.work)}`).join(" + ");
  out.push({
    target: "≤ 4 Postgres commits per run with a webhook (both databases)",
    value: w ? `${fmtNum(w.work)} (${parts(w)})` : "—",
    met: w !== undefined && w.work <= 4,
  });
  out.push({
    target: "≤ 2 Postgres commits per run without a webhook (both databases)",
    value: n ? `${fmtNum(n.work)} (${parts(n)})` : "—",
    met: n !== undefined && n.work <= 2,
  });
  const box = (name) => by[name]?.steady?.boxCpuMsPerRun;
  const lhBox = box("longhaul");
  out.push({
    target: "whole-box CPU per run ≤ 4 ms and below both peers' (own + Postgres + nats-server)",
    value: `${fmtNum(lhBox)} ms vs pg-boss ${fmtNum(box("pgboss"))} ms, graphile-worker ${fmtNum(box("graphile"))} ms`,
    met: lhBox !== undefined && lhBox !== null && lhBox <= 4 && !(lhBox >= box("pgboss")) && !(lhBox >= box("graphile")),
  });
  const idle = lh?.idle;
  const services = idle ? Object.entries(idle.cpuPctOfCore).filter(([k]) => k !== "postgres" && k !== "nats-server") : [];
  out.push({
    target: "idle: ≤ 1 % of one core per service",
    value: idle ? services.map(([k, v]) => `${k} ${fmtNum(v)} %`).join(", ") : "—",
    met: idle !== undefined && services.every(([, v]) => v <= 1),
  });
  out.push({
    target: "idle: ≤ 1 Postgres commit per second (both databases)",
    value: idle ? `${fmtNum(idle.commitsPerSecondTotal)}/s` : "—",
    met: idle !== undefined && idle.commitsPerSecondTotal <= 1,
  });
  return out;
}

/** What makes a system's figures less trustworthy, said plainly. */
function warnings(results) {
  const out = [];
  for (const r of results) {
    if (r.error) continue;
    if (r.search?.maxRate === 0) out.push(`${r.label}: no step passed, even at ${r.search.steps.at(-1)?.rate}/s; later phases ran at a floor rate`);
    if (r.quietAfterSearch === false) out.push(`${r.label}: still working off the search's backlog when the later phases started`);
    if (r.steady && !r.steady.drained) out.push(`${r.label}: the steady run's runs were not all processed in time`);
    if (r.latency && !r.latency.drained) out.push(`${r.label}: the latency run's runs were not all processed in time`);
  }
  return out.length > 0 ? ["Warnings:", ...out.map((w) => `  ${w}`), ""] : [];
}

/** The text printed at the end of a run. */
export function renderReport(doc) {
  const header = [
    "system",
    "accept max/s",
    "limited by (first failing step)",
    "accept p50/p99 ms @50%",
    "→app p50/p99 ms",
    "→webhook p50/p99 ms",
    "commits/run webhook/none",
    "CPU ms/run: box = own + pg + nats",
  ];
  const rows = [header];
  for (const r of doc.results) {
    if (r.error) {
      rows.push([r.label, "error", r.error.split("\n")[0].slice(0, 60), "", "", "", "", ""]);
      continue;
    }
    const s = r.steady;
    rows.push([
      r.label,
      r.search ? String(r.search.maxRate) : "—",
      r.search?.limitedBy || "—",
      s ? pair(s.accept) : "—",
      r.latency ? pair(r.latency.dispatch) : "—",
      r.latency?.webhook ? pair(r.latency.webhook) : "—",
      commitsCell(r),
      s ? `${fmtNum(s.boxCpuMsPerRun)} = ${fmtNum(s.ownCpuPer1000)} + ${fmtNum(s.cpuPer1000.postgres)} + ${fmtNum(s.cpuPer1000["nats-server"])}` : "—",
    ]);
  }
  const cpuLines = doc.results
    .filter((r) => r.steady)
    .map((r) => {
      const parts = Object.entries(r.steady.cpuPer1000).map(([k, v]) => `${k} ${fmtNum(v)}`);
      return `  ${r.label} @${r.steady.rate}/s: ${parts.join(", ")}`;
    });
  const idleLines = doc.results
    .filter((r) => r.idle)
    .map((r) => {
      const cpu = Object.entries(r.idle.cpuPctOfCore).map(([k, v]) => `${k} ${fmtNum(v)} %`);
      const commits = Object.entries(r.idle.commitsPerSecond).map(([k, v]) => `${k} ${fmtNum(v)}`);
      return `  ${r.label} (${r.idle.seconds.toFixed(0)} s): CPU ${cpu.join(", ")}; commits/s ${commits.join(" + ")} = ${fmtNum(r.idle.commitsPerSecondTotal)}`;
    });
  const halfLines = doc.results
    .filter((r) => r.steady?.dispatch)
    .map((r) => `  ${r.label} @${r.steady.rate}/s: →app ${pair(r.steady.dispatch)}${r.steady.webhook ? `, →webhook ${pair(r.steady.webhook)}` : ""}`);
  const otlpLines = doc.results
    .filter((r) => r.otlp)
    .map((r) => `  ${r.label}: ${r.otlp.requests} export requests, ${(r.otlp.bytes / 1024).toFixed(0)} KiB received over its whole measurement (sampler ${r.settings?.OTEL_TRACES_SAMPLER})`);
  const lc = doc.longCalls ?? [];
  const longRows = [
    ["system", "runs × hold", "accepted / failed", "submitted in s", "all finished in s", "webhooks", "peak RSS MiB (own)", "RSS KiB per call: held / peak", "CPU ms per call: box = own + pg + nats"],
    ...lc.map((r) =>
      r.error
        ? [r.label, "error", r.error.split("\n")[0].slice(0, 60), "", "", "", "", "", ""]
        : [
            r.label,
            `${r.count} × ${r.holdSeconds} s`,
            `${r.accepted} / ${r.failed}`,
            r.submitSeconds.toFixed(1),
            fmtNum(r.allFinishedSeconds, 1),
            String(r.finished),
            r.peakRssMiB.toFixed(0),
            `${fmtNum(r.heldRssKiBPerCall, 1)} / ${fmtNum(r.rssKiBPerCall, 1)}`,
            `${fmtNum(r.cpuMsPerCall.box)} = ${fmtNum(r.cpuMsPerCall.own)} + ${fmtNum(r.cpuMsPerCall.postgres)} + ${fmtNum(r.cpuMsPerCall.nats)}`,
          ],
    ),
  ];
  const t = doc.targets.map((x) => [x.met ? "met" : "MISSED", x.target, x.value]);
  const m = doc.machine;
  return [
    `Longhaul benchmark (${doc.mode}) — ${doc.finishedAt}`,
    `machine: ${m.cpus}× ${m.cpuModel}, ${m.memGiB} GiB, ${m.os}, node ${m.node}, postgres ${m.postgres.server_version} (fsync ${m.postgres.fsync}, synchronous_commit ${m.postgres.synchronous_commit}), nats-server ${m.natsServer}`,
    `command: ${doc.command}; the app answers ${doc.appDelayMs > 0 ? `after ${doc.appDelayMs} ms` : "at once"}; load average before ${m.loadBefore.join(" ")}, after ${m.loadAfter.join(" ")}; ${Math.round(doc.seconds)} s`,
    ...(doc.mode === "quick" ? ["quick mode: a smoke check (short steps, few runs, unsettled commit counts); compare figures of full runs only"] : []),
    "",
    table(rows),
    "",
    ...warnings(doc.results),
    "latencies from each request's intended send time (open loop); →app/→webhook at a fixed rate (100/s full, 50/s quick, at most half the maximum);",
    "commits/run: work per run, both databases (+ the idle background of the same window, per run); CPU at 50 % of each system's own maximum, whole box: the system's processes + Postgres (all backends) + nats-server.",
    "",
    "Postgres commits per run by database (work; the idle background of the same window apart):",
    ...commitLines(doc.results),
    "",
    "CPU seconds per 1,000 runs by process (= ms per run; loadgen, sinks, orchestrator: the harness, not charged):",
    ...cpuLines,
    "",
    ...(idleLines.length > 0 ? ["Idle after the load (no traffic): CPU as % of one core per process, Postgres commits per second:", ...idleLines, ""] : []),
    ...(halfLines.length > 0 ? ["At half the maximum (the steady phase, where CPU is measured): accept→app and →webhook p50 / p99 ms:", ...halfLines, ""] : []),
    ...(otlpLines.length > 0 ? ["OTLP export (the in-process receiver):", ...otlpLines, ""] : []),
    ...(lc.length > 0
      ? [
          "Long calls: runs whose app answers after the hold, submitted as fast as each system accepts them (peers' concurrency raised to the number of runs):",
          table(longRows),
          "RSS KiB per call while held, by process (growth since the scenario's start, over the runs; a burst's heap growth included):",
          ...lc
            .filter((r) => !r.error && r.heldRssKiBPerCallByProcess)
            .map((r) => `  ${r.label}: ${Object.entries(r.heldRssKiBPerCallByProcess).map(([k, v]) => `${k} ${fmtNum(v, 1)}`).join(", ")}`),
          "",
        ]
      : []),
    table([["", "Longhaul target", "measured"], ...t]),
  ].join("\n");
}
