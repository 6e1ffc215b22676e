// The soak's verdict: what each run must show, and the table printed at the end.

/** Defaults on the path that a naive build would hit (TOOLCHAIN.md), for the report. */
const DEFAULT_TIMEOUTS = [
  ["JetStream ack wait of the invoker's consumer", 10_000],
  ["scheduler lease (renewed by heartbeats)", 15_000],
  ["undici headersTimeout / bodyTimeout", 300_000],
  ["Node http.Server requestTimeout", 300_000],
  // GRPC_MAX_CONNECTION_AGE_SECONDS with grpc-js's +10 % jitter, then one 30-s keepalive period.
  ["gRPC max connection age and a keepalive period (sync calls)", 300_000 * 1.1 + 30_000],
];
/** The longest silence that proves no idle timeout cut a call (undici's 300 s). */
const IDLE_PROOF_MS = 300_000;
/** Timers fire a little early or late; a hold this much shorter still counts. */
const HOLD_TOLERANCE_MS = 1_000;

/**
 * Checks one run end to end: one attempt that succeeded; the app got the
 * body as submitted and answered after the whole hold, with the connection
 * still open; the stored result and the webhook are the app's bytes; the
 * webhook is signed and the run says delivered.
 */
export function checkRun({ runId, mode, body, holdMs, run, result, call, deliveries }) {
  const problems = [];
  if (!run) problems.push("GET /v1/runs/{id} gave nothing");
  else {
    if (run.status !== "succeeded") problems.push(`status ${run.status} (${run.error_code ?? ""}: ${run.error_message ?? ""})`);
    if (run.attempts?.length !== 1) problems.push(`${run.attempts?.length ?? 0} attempts`);
    if (run.webhook_state !== "delivered") problems.push(`webhook_state ${run.webhook_state}`);
  }
  if (!call) problems.push("the app never saw the call");
  else {
    if (call.closedEarly) problems.push(`connection closed by the caller after ${clock(call.closedAt - call.arrivedAt)}`);
    if (call.body !== body) problems.push("the app got another request body");
    if (call.answeredAt && call.answeredAt - call.arrivedAt < holdMs - HOLD_TOLERANCE_MS) problems.push("answered before the hold");
  }
  if (call?.answeredAt) {
    if (result.status !== 200) problems.push(`GET /result: ${result.status}`);
    else if (result.text !== call.sentBody) problems.push("the stored result differs from what the app sent");
  }
  const verified = deliveries.filter((d) => d.verified);
  if (deliveries.length === 0) problems.push("no webhook arrived");
  else if (verified.length === 0) problems.push("no webhook with a valid signature");
  else if (call && verified[0].body !== call.sentBody) problems.push("the webhook body differs from what the app sent");
  const started = run?.started_at ? Date.parse(run.started_at) : NaN;
  const finished = run?.finished_at ? Date.parse(run.finished_at) : NaN;
  return {
    runId,
    mode,
    ok: problems.length === 0,
    problems,
    succeeded: run?.status === "succeeded",
    webhook: verified.length > 0 && run?.webhook_state === "delivered",
    appHoldMs: call?.answeredAt ? call.answeredAt - call.arrivedAt : undefined,
    runMs: finished - started,
    maxIdleMs: call?.maxIdleMs ?? 0,
  };
}

/** A sync pass-through call: answered 200 with the app's answer, after the whole hold. */
export function checkSync({ mode, status, text, ms, error, holdMs }) {
  const problems = [];
  if (error) problems.push(error);
  else if (status !== 200) problems.push(`status ${status}: ${text.slice(0, 200)}`);
  else if (!text.includes(`"mode":"${mode}"`)) problems.push("not the app's answer");
  if (!error && ms < holdMs - HOLD_TOLERANCE_MS) problems.push(`answered after ${clock(ms)}, before the hold`);
  return { mode, status, ms, ok: problems.length === 0, problems };
}

/** Prints the table and the checks; true when the soak passed. */
export function printReport({ checked, sync, holdMs, leases, warnings, crashes, elapsedMs, log }) {
  const rows = [];
  const groups = [...new Set(checked.map((c) => c.mode)), "all"];
  for (const mode of groups) {
    const cs = mode === "all" ? checked : checked.filter((c) => c.mode === mode);
    const holds = cs.map((c) => c.appHoldMs).filter((x) => x !== undefined);
    const runMs = cs.map((c) => c.runMs).filter((x) => Number.isFinite(x));
    rows.push([
      mode,
      cs.length,
      cs.filter((c) => c.succeeded).length,
      cs.filter((c) => c.webhook).length,
      holds.length ? clock(Math.min(...holds)) : "-",
      holds.length ? clock(Math.max(...holds)) : "-",
      runMs.length ? `${clock(Math.min(...runMs))}–${clock(Math.max(...runMs))}` : "-",
      clock(Math.max(0, ...cs.map((c) => c.maxIdleMs))),
    ]);
  }
  const head = ["mode", "submitted", "succeeded", "webhooks delivered", "hold min", "hold max", "run started→finished", "longest silence"];
  console.log("");
  console.log(table([head, ...rows]));
  console.log("");
  console.log(`hold asked: ${clock(holdMs)}; soak took ${clock(elapsedMs)}`);
  console.log(`lease renewals seen: ${leases.renewals} over ${leases.ticks} progress lines`);
  for (const [what, ms] of DEFAULT_TIMEOUTS) {
    console.log(`  ${holdMs > ms ? "crossed" : "NOT crossed"}: ${what} (${clock(ms)})`);
  }
  for (const c of sync) {
    console.log(`sync pass-through (${c.mode}): ${c.ok ? `${c.status} after ${clock(c.ms)}` : `FAIL ${c.problems.join("; ")}`}`);
  }
  for (const [service, msgs] of Object.entries(warnings)) {
    const list = Object.entries(msgs).map(([m, n]) => `${n}× ${m}`);
    console.log(`warnings in ${service}'s log: ${list.length ? list.join("; ") : "none"}`);
  }

  const failures = checked.filter((c) => !c.ok);
  for (const f of failures.slice(0, 20)) console.log(`FAIL ${f.runId} (${f.mode}): ${f.problems.join("; ")}`);
  if (failures.length > 20) console.log(`… and ${failures.length - 20} more failed runs`);
  for (const c of crashes) console.log(`FAIL ${c}`);
  let idleProved = true;
  const longestSilence = Math.max(0, ...checked.filter((c) => c.ok).map((c) => c.maxIdleMs));
  if (holdMs > IDLE_PROOF_MS + 5_000) {
    idleProved = longestSilence > IDLE_PROOF_MS;
    console.log(
      `${idleProved ? "ok" : "FAIL"}: longest silence of a call that succeeded is ${clock(longestSilence)} (must exceed ${clock(IDLE_PROOF_MS)})`,
    );
  } else {
    console.log(`note: holds of ${clock(holdMs)} do not cross the 300 s timeouts; run with --minutes 6 or more for the proof`);
  }
  const ok = failures.length === 0 && crashes.length === 0 && idleProved && sync.every((c) => c.ok);
  log(
    ok
      ? `PASS: ${checked.length} runs held ${clock(holdMs)}, all succeeded and delivered; ${sync.length} sync calls answered`
      : "FAIL",
  );
  return ok;
}

function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((v, i) => String(v).padEnd(widths[i])).join("  ").trimEnd()).join("\n");
}

/** `h:mm:ss` or `m:ss`. */
export function clock(ms) {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, "0");
  return `${h ? `${h}:` : ""}${mm}:${String(s % 60).padStart(2, "0")}`;
}
