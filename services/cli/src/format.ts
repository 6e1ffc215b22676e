import type { App, Delivery, Project, Run } from "@longhaul/client";

/** Column-aligned text: a header row, then one row per item (no colours: safe to pipe). */
export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null || c === undefined || c === "" ? "-" : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}

/** Name/value lines. */
export function fields(pairs: [string, string | number | boolean | null | undefined][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v === null || v === undefined || v === "" ? "-" : String(v)}`).join("\n") + "\n";
}

/** `1.2s`, `3m04s`, `2h05m`. */
export function duration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function runDuration(run: Run): string | undefined {
  const start = run.started_at ?? run.created_at;
  if (!run.finished_at || !start) return undefined;
  return duration(Date.parse(run.finished_at) - Date.parse(start));
}

export function runSummary(run: Run): string {
  return fields([
    ["run", run.run_id],
    ["app", run.app],
    ["status", run.status],
    ["status code", run.status_code],
    ["attempt", `${run.attempt}/${run.max_attempts}`],
    ["created", run.created_at],
    // The run's own queue deadline, only when it has one.
    ...(run.expires_at ? [["start by", run.expires_at] as [string, string]] : []),
    ["finished", run.finished_at],
    ["duration", runDuration(run)],
    ["webhook", run.webhook_url ? `${run.webhook_state} ${run.webhook_url}` : run.webhook_state],
    ["error", run.error_code ? `${run.error_code}: ${run.error_message ?? ""}` : undefined],
    ["labels", Object.entries(run.labels).map(([k, v]) => `${k}=${v}`).join(",")],
  ]);
}

export function runsTable(runs: Run[]): string {
  return table(
    ["RUN", "APP", "STATUS", "CODE", "CREATED", "DURATION"],
    runs.map((r) => [r.run_id, r.app, r.status, r.status_code, r.created_at, runDuration(r)]),
  );
}

export function appsTable(apps: App[]): string {
  return table(
    ["APP", "URL", "TIMEOUT", "CONCURRENCY", "ATTEMPTS", "IN FLIGHT", "QUEUED", "PAUSED"],
    apps.map((a) => [a.name, a.url, `${a.timeout_seconds}s`, a.max_concurrency || "unlimited", a.retry.max_attempts, a.in_flight, a.queued, a.paused ? "yes" : "no"]),
  );
}

export function projectsTable(projects: Project[]): string {
  return table(
    ["PROJECT", "CREATED", "RUNS TODAY", "IN FLIGHT", "QUEUED", "THROTTLED TODAY"],
    projects.map((p) => [p.name, p.created_at, p.usage.runs_today, p.usage.in_flight, p.usage.queued, p.usage.throttled_today]),
  );
}

export function limitsFields(p: Project): string {
  const l = p.limits;
  const v = (n: number) => (n === 0 ? "unlimited" : n);
  return fields([
    ["project", p.name],
    ["submits_per_second", v(l.submits_per_second)],
    ["burst", v(l.burst)],
    ["max_in_flight", v(l.max_in_flight)],
    ["max_queued", v(l.max_queued)],
    ["max_watch_streams", v(l.max_watch_streams)],
  ]);
}

export function deliveryText(d: Delivery): string {
  return (
    fields([
      ["run", d.run_id],
      ["webhook", d.webhook_id],
      ["url", d.url],
      ["state", d.state],
      ["attempts", d.attempts_made],
      ["next attempt", d.next_attempt_at],
    ]) +
    "\n" +
    table(
      ["ATTEMPT", "STARTED", "MS", "STATUS", "ERROR"],
      d.attempts.map((a) => [a.attempt, a.started_at, Math.round(a.duration_ms), a.status_code, a.error]),
    )
  );
}
