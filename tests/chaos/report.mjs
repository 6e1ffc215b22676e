// The chaos run's figures: what Postgres says of each run and attempt, set
// beside what the app and the webhook receiver saw, joined by run id and
// attempt (run_attempts.invoker_id names the invoker process of each call).
// Figures are printed, never asserted.

const TERMINAL = new Set(["succeeded", "failed", "timed_out", "cancelled", "expired"]);

/** The pid inside an INVOKER_ID (`<host>-<pid>-<hex>`, the invoker's default). */
export function invokerPid(invokerId) {
  const m = /-(\d+)-[0-9a-f]+$/.exec(invokerId ?? "");
  return m ? Number(m[1]) : undefined;
}

/** How many times each value occurs, as `{value: count}` with keys in order. */
function histogram(values) {
  const out = {};
  for (const v of [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) out[v] = (out[v] ?? 0) + 1;
  return out;
}

const fmt = (h) =>
  Object.entries(h)
    .map(([k, v]) => `${k}: ${v}`)
    .join(", ") || "none";

async function query(db, text) {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await db.query(text)).rows;
    } catch (err) {
      if (attempt >= 10) throw err;
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
}

/**
 * Gathers the figures.
 *
 * @param {object} o
 * @param {import("pg").Pool} o.db
 * @param {{ calls: Map<string, import("./app.mjs").AppCall[]> }} o.app
 * @param {{ byRun: Map<string, {verified: boolean, headers: Record<string, unknown>}[]> }} o.hooks
 * @param {{ planned: number, accepted: Map<number, {runId: string, app: string}>, retried: Record<string, number>, gaveUp: Map<number, string> }} o.submitted
 * @param {{ kind?: string, pid?: number, held?: number }[]} o.faults
 * @param {{ what: string, code: number | null, signal: string | null, at: string }[]} o.crashes
 * @param {{ logs(name: string, index: number): string, processes: {name: string, index: number}[] }} o.mesh
 */
export async function collectFigures({ db, app, hooks, submitted, faults, crashes, mesh, lastFaultAt, settledAt, settleMs, interrupted = false }) {
  const runs = new Map((await query(db, "select id, app, status, error_code, attempt, webhook_state from runs")).map((r) => [r.id, r]));
  const attempts = new Map(
    (await query(db, "select run_id, attempt, invoker_id, error_code from run_attempts")).map((a) => [`${a.run_id}#${a.attempt}`, a]),
  );
  const accepted = [...submitted.accepted.values()];
  const acceptedIds = new Set(accepted.map((a) => a.runId));
  const known = accepted.map((a) => ({ ...a, run: runs.get(a.runId) })).filter((a) => a.run);
  const finished = known.filter((a) => TERMINAL.has(a.run.status));

  const callsOf = (runId) => app.calls.get(runId) ?? [];
  const callCounts = (appName) => histogram(known.filter((a) => a.app === appName).map((a) => callsOf(a.runId).length));
  const idem = known.filter((a) => a.app === "chaos-idem");
  const once = known.filter((a) => a.app === "chaos-once");

  // Every call the app saw, with the invoker process that made it.
  const allCalls = [...app.calls.entries()].flatMap(([runId, cs]) =>
    cs.map((c) => ({ ...c, runId, attemptRow: attempts.get(`${runId}#${c.attempt}`) })),
  );
  const byPid = (pid) => allCalls.filter((c) => invokerPid(c.attemptRow?.invoker_id) === pid);
  const killedInvokers = faults.filter((f) => f.kind === "kill" && f.service === "invoker");
  const cutByKill = killedInvokers.reduce((n, f) => n + byPid(f.pid).filter((c) => c.cut).length, 0);
  const drained = faults.filter((f) => f.kind === "sigterm");
  const drainCalls = drained.flatMap((f) => byPid(f.pid));
  const drainAttempts = [...attempts.values()].filter((a) => drained.some((f) => invokerPid(a.invoker_id) === f.pid));

  const hookRows = finished.filter((a) => a.run.webhook_state !== "none");
  const deliveries = (a) => hooks.byRun.get(a.runId) ?? [];
  const ids = (a) => new Set(deliveries(a).map((d) => String(d.headers["webhook-id"] ?? "")));

  const errorLines = {};
  for (const p of mesh.processes) {
    const n = mesh
      .logs(p.name, p.index)
      .split("\n")
      .filter((l) => /"level":(50|60)\b/.test(l)).length;
    errorLines[p.name] = (errorLines[p.name] ?? 0) + n;
  }

  return {
    planned: submitted.planned,
    accepted: accepted.length,
    retried: submitted.retried,
    gaveUp: histogram([...submitted.gaveUp.values()].map((v) => v.slice(0, 60))),
    inPostgres: runs.size,
    notAcknowledged: [...runs.keys()].filter((id) => !acceptedIds.has(id)).length,
    statuses: histogram(known.map((a) => a.run.status)),
    failedBy: histogram(known.filter((a) => a.run.status === "failed").map((a) => a.run.error_code ?? "(none)")),
    failedByApp: {
      idempotent: histogram(idem.filter((a) => a.run.status === "failed").map((a) => a.run.error_code ?? "(none)")),
      notIdempotent: histogram(once.filter((a) => a.run.status === "failed").map((a) => a.run.error_code ?? "(none)")),
    },
    lost: accepted.length - known.length,
    lostIds: accepted.filter((a) => !runs.has(a.runId)).map((a) => a.runId),
    stuck: known.length - finished.length,
    stuckIds: known.filter((a) => !TERMINAL.has(a.run.status)).map((a) => `${a.runId} (${a.run.status})`),
    callsIdem: callCounts("chaos-idem"),
    callsOnce: callCounts("chaos-once"),
    onceTwice: once.filter((a) => callsOf(a.runId).length >= 2).map((a) => a.runId),
    idemExtraCalls: idem.reduce((n, a) => n + Math.max(0, callsOf(a.runId).length - 1), 0),
    cutByKill,
    invokerKills: killedInvokers.length,
    hooksExpected: hookRows.length,
    hooksDelivered: hookRows.filter((a) => deliveries(a).length > 0).length,
    hooksUnverified: hookRows.filter((a) => deliveries(a).length > 0 && !deliveries(a).some((d) => d.verified)).length,
    hooksPending: hookRows.filter((a) => a.run.webhook_state === "pending").length,
    hooksSameIdAgain: hookRows.filter((a) => deliveries(a).length > 1 && ids(a).size === 1).length,
    hooksDifferentIds: hookRows.filter((a) => ids(a).size > 1).map((a) => a.runId),
    drainHeld: drained.reduce((n, f) => n + (f.held ?? 0), 0),
    drainCalls: drainCalls.length,
    drainCut: drainCalls.filter((c) => c.cut).length,
    drainEndedInError: drainAttempts.filter((a) => a.error_code !== null).length,
    crashes,
    errorLines,
    settledWithinMs: settledAt - lastFaultAt,
    settleMs,
    interrupted,
  };
}

/** Prints the one table (Markdown, so that it pastes into the README as is). */
export function printTable(f) {
  const retried = fmt(f.retried);
  const rows = [
    ["runs submitted (202)", `${f.accepted} of ${f.planned}`, `${f.planned}`],
    ["  submits refused or failed, retried by the driver", retried, "counted"],
    ["  submits given up", fmt(f.gaveUp), "none"],
    ["  runs in Postgres never acknowledged to the driver", f.notAcknowledged, "0"],
    ["succeeded", f.statuses.succeeded ?? 0, ""],
    ["failed, by error code", fmt(f.failedBy), "`interrupted` only for cut non-idempotent calls"],
    ["  of the idempotent app", fmt(f.failedByApp.idempotent), ""],
    ["  of the non-idempotent app", fmt(f.failedByApp.notIdempotent), ""],
    ["other end states", fmt(Object.fromEntries(Object.entries(f.statuses).filter(([k]) => k !== "succeeded" && k !== "failed"))), "none"],
    ["lost (accepted, not in Postgres)", f.lost, "0"],
    [f.interrupted ? "stuck (not finished when interrupted)" : `stuck (not finished ${f.settleMs / 1000} s after the last fault)`, f.stuck, "0"],
    ["app calls per run, idempotent app (calls: runs)", fmt(f.callsIdem), ""],
    ["app calls per run, non-idempotent app (calls: runs)", fmt(f.callsOnce), ""],
    ["non-idempotent runs called twice or more", f.onceTwice.length, "0"],
    ["idempotent runs: extra calls", f.idemExtraCalls, `≤ calls cut by invoker kill -9 (${f.cutByKill}, ${f.invokerKills} kill)`],
    ["webhooks delivered (runs with one)", `${f.hooksDelivered} of ${f.hooksExpected}`, "all"],
    ["  unverified signature / still pending", `${f.hooksUnverified} / ${f.hooksPending}`, "0 / 0"],
    ["  runs delivered twice, same webhook-id", f.hooksSameIdAgain, "allowed (at least once)"],
    ["  runs delivered twice, different webhook-id", f.hooksDifferentIds.length, "0"],
    ["calls held by the SIGTERM'd invoker / cut", `${f.drainHeld} held at SIGTERM, ${f.drainCalls} made by it / ${f.drainCut} cut, ${f.drainEndedInError} attempts ended in error`, "0 cut"],
    ["service exits not caused by the harness", f.crashes.length ? f.crashes.map((c) => `${c.what} at ${c.at} (code ${c.code}, signal ${c.signal})`).join("; ") : "none", "none"],
    ["error lines in service logs (pino level ≥ 50)", fmt(f.errorLines), ""],
  ];
  const head = ["figure", "value", "expected"];
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(width[i])).join(" | ")} |`;
  console.log(line(head));
  console.log(`|${width.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of rows) console.log(line(r));
  const ids = [
    ["lost", f.lostIds],
    ["stuck", f.stuckIds],
    ["non-idempotent called twice", f.onceTwice],
    ["webhooks with different ids", f.hooksDifferentIds],
  ].filter(([, v]) => v.length > 0);
  if (ids.length) {
    console.log("");
    for (const [what, v] of ids) console.log(`${what}: ${v.slice(0, 20).join(", ")}${v.length > 20 ? ` … (${v.length})` : ""}`);
  }
}
