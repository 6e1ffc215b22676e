// The held-calls benchmark's printed table: per N, Longhaul's invoker beside
// the bare undici floor.
import { kb, mb, msf, table } from "./lib.mjs";

const perCall = (row, field) => (row ? (row[field] - row.base[field]) / row.n : NaN);

/** Prints the machine, the table and the drain after release to stdout. */
export function printResults(r) {
  const m = r.machine;
  console.log("");
  console.log(`machine: ${m.cpus} × ${m.cpuModel}, ${m.memGb} GB, node ${m.node}; load average before ${m.loadBefore}, after ${r.loadAfter}`);
  if (r.longhaulBase) console.log(`invoker at rest (after 100 warm-up runs): RSS ${mb(r.longhaulBase.rss)} MB, heap ${mb(r.longhaulBase.heapUsed)} MB`);
  if (r.longhaulBase?.pg)
    console.log(
      `Postgres at rest (no calls held, no submits): ${r.longhaulBase.pg.commitsPerSecond.toFixed(1)} commits/s, ` +
        `${r.longhaulBase.pg.rowsUpdatedPerSecond.toFixed(1)} rows updated/s; the PG columns below are measured the same way while N calls are held`,
    );
  if (r.floorBase) console.log(`floor at rest (after 50 warm-up calls): RSS ${mb(r.floorBase.rss)} MB, heap ${mb(r.floorBase.heapUsed)} MB`);
  const head = [
    "N held",
    "fill s",
    "invoker RSS/call KB",
    "heap/call KB",
    "event-loop p99 ms",
    "accept p50/p99 ms",
    "PG commits/s",
    "PG rows updated/s",
    "floor RSS/call KB",
    "floor heap/call KB",
    "floor event-loop p99 ms",
    "floor new call p50/p99 ms",
  ];
  const rows = [head];
  for (const n of r.settings.steps) {
    const l = r.longhaul.find((x) => x.n === n);
    const f = r.floor.find((x) => x.n === n);
    rows.push([
      l && l.held < n ? `${n} (only ${l.held})` : n,
      l ? (l.fillMs / 1000).toFixed(0) : "-",
      kb(perCall(l, "rss")),
      kb(perCall(l, "heapUsed")),
      msf(l?.eldP99Ms),
      l ? `${msf(l.probe.p50)} / ${msf(l.probe.p99)}${l.probe.failed ? ` (${l.probe.failed} failed)` : ""}` : "-",
      l?.pg ? l.pg.commitsPerSecond.toFixed(1) : "-",
      l?.pg ? l.pg.rowsUpdatedPerSecond.toFixed(1) : "-",
      kb(perCall(f, "rss")),
      kb(perCall(f, "heapUsed")),
      msf(f?.eldP99Ms),
      f ? `${msf(f.probe.p50)} / ${msf(f.probe.p99)}${f.probe.failed ? ` (${f.probe.failed} failed)` : ""}` : "-",
    ]);
  }
  console.log("");
  console.log(table(rows));
  console.log("");
  const d = r.longhaulDrain;
  if (d) {
    console.log(
      `after the app answered all held calls: runs ${JSON.stringify(d.statuses)} within ${(d.ms / 1000).toFixed(0)} s ` +
        `(${d.recordedPerSecond?.toFixed(0) ?? "?"} outcomes recorded per second); ` +
        `submits refused ${d.submitFailures}; calls closed by the invoker before the answer ${d.closedEarly}`,
    );
  }
  if (r.floorDrain) console.log(`floor: ${r.floorDrain.ok} calls answered, ${r.floorDrain.failed} failed`);
  for (const l of r.longhaul) {
    console.log(
      `invoker N=${l.n}: RSS ${mb(l.rss)} MB (max ${mb(l.rssMax)}), heap ${mb(l.heapUsed)} MB, fds ${l.fds}, submits ${(l.submitMs / 1000).toFixed(0)} s, load ${l.load}`,
    );
  }
  for (const f of r.floor) {
    console.log(`floor   N=${f.n}: RSS ${mb(f.rss)} MB (max ${mb(f.rssMax)}), heap ${mb(f.heapUsed)} MB, fds ${f.fds}, load ${f.load}`);
  }
}
