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

/** The targets of issue 7, each with the figures it compares and whether it held. */
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
  const proper = lh?.commits?.withoutWebhook?.parts?.scheduler;
  const full = lh?.commits?.withWebhook;
  out.push({
    target: "≤ 3 Postgres commits per run on the async path (submit+claim+complete)",
    value: proper
      ? `${fmtNum(proper.work)} without webhook; ${fmtNum(full.work)} with one (scheduler ${fmtNum(full.parts.scheduler.work)} + notifier ${fmtNum(full.parts.notifier.work)})`
      : "—",
    met: proper !== undefined && proper.work <= 3,
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
    "CPU s/1k runs: own / pg / nats",
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
      s ? `${fmtNum(s.ownCpuPer1000)} / ${fmtNum(s.cpuPer1000.postgres)} / ${fmtNum(s.cpuPer1000["nats-server"])}` : "—",
    ]);
  }
  const cpuLines = doc.results
    .filter((r) => r.steady)
    .map((r) => {
      const parts = Object.entries(r.steady.cpuPer1000).map(([k, v]) => `${k} ${fmtNum(v)}`);
      return `  ${r.label} @${r.steady.rate}/s: ${parts.join(", ")}`;
    });
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
    "commits/run: work per run (+ the idle background of the same window, per run); CPU at 50 % of each system's own maximum.",
    "",
    "Postgres commits per run by database (work; the idle background of the same window apart):",
    ...commitLines(doc.results),
    "",
    "CPU seconds per 1,000 runs by process (loadgen, sinks, orchestrator: the harness):",
    ...cpuLines,
    "",
    table([["", "Longhaul target", "measured"], ...t]),
  ].join("\n");
}
