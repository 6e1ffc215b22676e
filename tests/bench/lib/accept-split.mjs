// accept→app split by hop, from the traces the services export (bench:profile --split).
//
// The services export OTLP/HTTP JSON to `spanCollector`'s server; each
// sampled run's trace then holds, in order: the gateway's request span, its
// client span for the submit on the SubmitRuns stream, the scheduler's server
// span for it, the insert's pg span, the `run.handoff` producer span, the
// invoker's `run.call` span and its undici span for the app's request.
// Span start times are whole milliseconds of each process's wall clock (the
// SDK anchors a span's start to Date.now(); its duration is exact), so a
// single gap is only right to ±1 ms; its mean over many runs is unbiased.
// The split is therefore the mean of each hop over the typical runs (those
// whose accept→app is at or under its p90), which sum to their mean
// accept→app; the p99 of each hop over all runs is printed beside it.
import http from "node:http";
import { percentile, summary } from "./stats.mjs";

/** An OTLP/HTTP JSON receiver keeping every span, grouped by trace id. */
export function spanCollector() {
  const byTrace = new Map();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString());
        for (const rs of body.resourceSpans ?? []) {
          const service = rs.resource?.attributes?.find((a) => a.key === "service.name")?.value?.stringValue ?? "?";
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              const attrs = Object.fromEntries((s.attributes ?? []).map((a) => [a.key, Object.values(a.value ?? {})[0]]));
              const span = {
                service: service.replace(/^longhaul-/, ""),
                name: s.name,
                kind: s.kind,
                start: Number(BigInt(s.startTimeUnixNano) / 1000n) / 1000,
                end: Number(BigInt(s.endTimeUnixNano) / 1000n) / 1000,
                attrs,
              };
              const list = byTrace.get(s.traceId) ?? [];
              list.push(span);
              byTrace.set(s.traceId, list);
            }
          }
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end("{}");
      } catch {
        res.writeHead(400);
        res.end();
      }
    });
  });
  return { server, traces: () => byTrace };
}

/** SpanKind numbers as OTLP JSON writes them. */
const SERVER = 2;
const CLIENT = 3;
/** The hop that is the whole of accept→app. */
const TOTAL = "= accept→app";

/**
 * Per hop, its mean over the typical runs and its p99 over all, in ms. `appAt`: the app's receipt
 * of each run's call (performance.now() of this process, by run id);
 * `accepted`: each run's intended send time and 202 (same clock).
 */
export function acceptSplit(traces, appAt, accepted) {
  const toWall = (t) => performance.timeOrigin + t;
  const byRun = new Map(accepted.map((r) => [r.runId, r]));
  /** Per traced run, its hops in order (ms by hop name). */
  const rows = [];
  for (const spans of traces.values()) {
    const find = (service, test) => spans.find((s) => s.service === service && test(s));
    const call = find("invoker", (s) => s.name === "run.call");
    const runId = call?.attrs["longhaul.run_id"];
    const sent = runId && byRun.get(runId);
    const at = runId && appAt.get(runId);
    const gateway = find("ingress", (s) => s.kind === SERVER);
    const submit = find("ingress", (s) => s.kind === CLIENT && s.name.endsWith("SubmitRun"));
    const received = find("scheduler", (s) => s.kind === SERVER && s.name.endsWith("SubmitRun"));
    const insert = find("scheduler", (s) => s.kind === CLIENT && /insert/i.test(`${s.name} ${s.attrs["db.statement"] ?? s.attrs["db.query.text"] ?? ""}`));
    const handoff = find("scheduler", (s) => s.name === "run.handoff");
    const request = find("invoker", (s) => s.kind === CLIENT && s.name !== "run.call");
    if (!sent || at === undefined || !gateway || !submit || !received || !insert || !handoff) continue;
    const due = toWall(sent.due);
    const row = new Map([
      ["loadgen's intended send → gateway's request span", gateway.start - due],
      ["gateway: request → submit sent to the scheduler", submit.start - gateway.start],
      ["submit on the stream → scheduler's span", received.start - submit.start],
      ["scheduler: span → insert sent", insert.start - received.start],
      ["insert (statement and commit, shared)", insert.end - insert.start],
      ["insert done → run.handoff sent", handoff.start - insert.end],
      ["run.handoff → invoker's run.call", call.start - handoff.start],
    ]);
    if (request) {
      row.set("run.call → app request started", request.start - call.start);
      row.set("app request started → app received it", toWall(at) - request.start);
    } else row.set("run.call → app received it", toWall(at) - call.start);
    row.set(TOTAL, toWall(at) - due);
    row.set("(202: scheduler's span end → loadgen's answer)", toWall(sent.done) - received.end);
    rows.push(row);
  }
  const p90 = percentile(rows.map((row) => row.get(TOTAL)), 90);
  const typical = rows.filter((row) => row.get(TOTAL) <= p90);
  const names = [...new Set(rows.flatMap((row) => [...row.keys()]))];
  const hops = names.map((name) => {
    const of = (list) => list.map((row) => row.get(name)).filter((ms) => ms !== undefined);
    const mine = of(typical);
    return { name, mean: mine.reduce((a, b) => a + b, 0) / Math.max(1, mine.length), p99: summary(of(rows)).p99 };
  });
  return { runs: rows.length, typical: typical.length, hops };
}
