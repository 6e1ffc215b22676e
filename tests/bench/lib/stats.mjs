// Figures from raw timings: percentiles, and the pass/fail of one step of the
// accept-throughput search (accept p99 under the bound, and no backlog growth,
// neither of unanswered submits nor of accepted runs not yet processed).

/** The p-th percentile (0–100) of `values` (NaN counts as +Infinity: a failure is slower than any answer). */
export function percentile(values, p) {
  const sorted = Float64Array.from(values, (v) => (Number.isNaN(v) ? Infinity : v)).sort();
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** p50, p99 and count of latencies in ms. */
export function summary(values) {
  return { n: values.length, p50: percentile(values, 50), p99: percentile(values, 99) };
}

/** Per request: answer time minus intended send time (NaN when it failed). */
export function acceptLatencies(run) {
  return Float64Array.from(run.intended, (t, i) => run.done[i] - t);
}

/**
 * For each accepted request of `run` (in order), when `arrivals` (ids,
 * times) first saw its id; NaN when it never arrived.
 */
export function arrivalTimes(run, arrivals) {
  const first = new Map();
  arrivals.ids.forEach((id, k) => {
    if (!first.has(id)) first.set(id, arrivals.times[k]);
  });
  const out = [];
  for (let i = 0; i < run.ids.length; i++) {
    if (Number.isNaN(run.done[i])) continue;
    out.push(first.get(run.ids[i]) ?? NaN);
  }
  return Float64Array.from(out);
}

/** Like arrivalTimes, minus each request's intended send time: the latency a client sees. */
export function arrivalLatencies(run, arrivals) {
  const times = arrivalTimes(run, arrivals);
  const intended = run.intended.filter((_, i) => !Number.isNaN(run.done[i]));
  return times.map((t, k) => t - intended[k]);
}

/** How many of `times` are ≤ t, for sorted `times`. */
function countUpTo(sorted, t) {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const sortedFinite = (values) => Float64Array.from(values).filter((v) => Number.isFinite(v)).sort();

/**
 * Judges one step at `rate`: passes when accept p99 ≤ `p99BoundMs`, fewer
 * than 1 % of submits failed, and neither backlog grew over the second half
 * of the step by more than 10 % of what arrived in it (min 10): the
 * unanswered submits, and (for systems that process runs) the accepted runs
 * not yet processed.
 * @param {{ intended: Float64Array, done: Float64Array, ids: string[] }} run
 * @param {Float64Array | null} processedTimes  processing time of each accepted run (NaN: not processed); null if none
 */
export function judgeStep(run, rate, processedTimes, p99BoundMs = 50) {
  const lat = acceptLatencies(run);
  const n = lat.length;
  const failed = lat.filter((v) => Number.isNaN(v)).length;
  const p = summary(lat);
  const start = run.intended[0];
  const end = run.intended[n - 1];
  const mid = (start + end) / 2;
  const tolerance = Math.max(10, 0.1 * rate * ((end - mid) / 1000));
  const sent = sortedFinite(run.intended);
  const answered = sortedFinite(run.done);
  const clientBacklog = (t) => countUpTo(sent, t) - countUpTo(answered, t);
  const clientGrowth = clientBacklog(end) - clientBacklog(mid);
  let processingGrowth = null;
  let processed = null;
  if (processedTimes) {
    const done = sortedFinite(processedTimes);
    processed = done.length;
    const procBacklog = (t) => countUpTo(answered, t) - countUpTo(done, t);
    processingGrowth = procBacklog(end) - procBacklog(mid);
  }
  let reason = "";
  if (p.p99 > p99BoundMs) reason = `accept p99 ${fmtMs(p.p99)} > ${p99BoundMs} ms`;
  else if (failed / n >= 0.01) reason = `${failed}/${n} submits failed`;
  else if (clientGrowth > tolerance) reason = `unanswered submits grew by ${clientGrowth}`;
  else if (processingGrowth !== null && processingGrowth > tolerance) reason = `processing backlog grew by ${processingGrowth}`;
  return {
    rate: Math.round(rate),
    sent: n,
    failed,
    p50: p.p50,
    p99: p.p99,
    clientGrowth,
    processed,
    processingGrowth,
    pass: reason === "",
    reason,
  };
}

/** A latency in ms for people: 3 significant digits, "fail" for none. */
export function fmtMs(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (!Number.isFinite(v)) return "fail";
  if (v >= 100) return `${Math.round(v)}`;
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}
