import type { Delivery, Run, RunStatus } from "./types.js";

/** Pure formatting and ordering helpers of the dashboard (no DOM: unit-tested in Node). */

const FINISHED: ReadonlySet<RunStatus> = new Set(["succeeded", "failed", "timed_out", "cancelled", "expired"]);

/** True once a run can change no more (its webhook state still may). */
export function isFinished(status: RunStatus): boolean {
  return FINISHED.has(status);
}

/** Words for a status: `timed_out` reads "timed out". */
export function statusLabel(status: string): string {
  return status.replace(/_/g, " ");
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** A time as people read it: `14:03:27` today, `2026-05-01 14:03:27` another day (local time). */
export function formatTime(iso: string | null, now: Date = new Date()): string {
  if (!iso) return "—";
  const d = new Date(iso);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const sameDay = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate();
  return sameDay ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** A time to the millisecond, for timelines. */
export function formatPreciseTime(iso: string, now: Date = new Date()): string {
  return `${formatTime(iso, now)}.${pad(new Date(iso).getMilliseconds(), 3)}`;
}

/** A duration in the largest units that matter: `850 ms`, `12.3 s`, `4 m 05 s`, `2 h 03 m`. */
export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return "—";
  const v = Math.max(0, ms);
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60_000) return `${(v / 1000).toFixed(1)} s`;
  const s = Math.floor(v / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} m ${pad(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} m`;
}

/**
 * How long the app has been (or was) working on the run: from the start of
 * its first attempt to its end, or to `now` while it runs. Null before a
 * start (queued, or ended without one).
 */
export function runDurationMs(run: Run, now: number = Date.now()): number | null {
  const start = run.attempts[0]?.started_at ?? run.started_at;
  if (!start) return null;
  const end = run.finished_at ? Date.parse(run.finished_at) : isFinished(run.status) ? null : now;
  return end === null ? null : end - Date.parse(start);
}

/** Bytes as people read them. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

/** A body for reading: JSON pretty-printed (when it parses), anything else as it is. */
export function prettyBody(text: string, contentType: string | null): string {
  const looksJson = /json/i.test(contentType ?? "") || /^\s*[[{]/.test(text);
  if (!looksJson) return text;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    // A cut-off preview or not JSON after all: show it as sent.
    return text;
  }
}

/** The value of a header, by case-insensitive name. */
export function headerValue(headers: readonly { name: string; value: string }[], name: string): string | null {
  const lower = name.toLowerCase();
  return headers.find((h) => h.name.toLowerCase() === lower)?.value ?? null;
}

/** Order of the runs table: newest first, ties by id (as the API pages them). */
export function compareRuns(a: Run, b: Run): number {
  const t = Date.parse(b.created_at) - Date.parse(a.created_at);
  return t !== 0 ? t : b.run_id < a.run_id ? -1 : b.run_id > a.run_id ? 1 : 0;
}

/** One line of a run's timeline. */
export interface TimelineEntry {
  at: string;
  /** What kind of step: the dot's colour. */
  kind: "accepted" | "scheduled" | "dispatched" | "attempt-start" | "attempt-end" | "finished" | "webhook" | "webhook-next";
  label: string;
  detail: string;
  /** True for a step that went wrong (an error, a non-2xx). */
  bad: boolean;
}

const ok2xx = (code: number | null) => code !== null && code >= 200 && code < 300;

/**
 * A run's life in time order (accepted, dispatched, each attempt's
 * start and end, finished, each webhook attempt), from the run and its
 * webhook delivery.
 */
export function timeline(run: Run, delivery: Delivery | null): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  out.push({ at: run.created_at, kind: "accepted", label: "Accepted", detail: `${run.mode} ${run.method} ${run.path}`, bad: false });
  if (run.not_before && Date.parse(run.not_before) > Date.parse(run.created_at)) {
    out.push({ at: run.not_before, kind: "scheduled", label: "Not before", detail: "held until this time", bad: false });
  }
  if (run.dispatched_at) out.push({ at: run.dispatched_at, kind: "dispatched", label: "Dispatched", detail: "handed to an invoker", bad: false });
  for (const a of run.attempts) {
    if (a.started_at) {
      out.push({ at: a.started_at, kind: "attempt-start", label: `Attempt ${a.attempt} started`, detail: a.invoker_id ? `by ${a.invoker_id}` : "", bad: false });
    }
    if (a.finished_at) {
      const what = a.status_code !== null ? `HTTP ${a.status_code}` : "no response";
      const err = a.error_code ? ` · ${a.error_code}${a.error_message ? `: ${a.error_message}` : ""}` : "";
      const took = a.started_at ? ` · ${formatDuration(Date.parse(a.finished_at) - Date.parse(a.started_at))}` : "";
      out.push({ at: a.finished_at, kind: "attempt-end", label: `Attempt ${a.attempt} ended`, detail: `${what}${err}${took}`, bad: !ok2xx(a.status_code) });
    }
  }
  if (run.finished_at) {
    const code = run.status_code !== null ? ` · HTTP ${run.status_code}` : "";
    const err = run.error_code ? ` · ${run.error_code}` : "";
    out.push({ at: run.finished_at, kind: "finished", label: `Finished ${statusLabel(run.status)}`, detail: `${code}${err}`.replace(/^ · /, ""), bad: run.status !== "succeeded" });
  }
  for (const a of delivery?.attempts ?? []) {
    if (!a.started_at) continue;
    const what = a.status_code !== null ? `HTTP ${a.status_code}` : (a.error ?? "no response");
    out.push({ at: a.started_at, kind: "webhook", label: `Webhook attempt ${a.attempt}`, detail: `${what} · ${formatDuration(a.duration_ms)}`, bad: !ok2xx(a.status_code) });
  }
  if (delivery?.state === "pending" && delivery.next_attempt_at) {
    out.push({ at: delivery.next_attempt_at, kind: "webhook-next", label: "Next webhook attempt", detail: "scheduled", bad: false });
  }
  // Stable: steps stamped the same millisecond keep the order above.
  return out.map((e, i) => ({ e, i })).sort((x, y) => Date.parse(x.e.at) - Date.parse(y.e.at) || x.i - y.i).map((x) => x.e);
}

/** A bucket of the overview as the legend and the figures table name it: `14:05`, or `05-01 14:00` for longer windows (local time). */
export function bucketLabel(startSeconds: number, bucketSeconds: number, now: Date = new Date()): string {
  const d = new Date(startSeconds * 1000);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (bucketSeconds < 900) return time;
  const sameDay = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate();
  return sameDay ? time : `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** Delivered webhooks as a share of those settled, in percent; null when none settled. */
export function deliveryRate(delivered: number, failed: number): number | null {
  const settled = delivered + failed;
  return settled === 0 ? null : Math.round((delivered / settled) * 1000) / 10;
}

/** Counts summed over every bucket of a stats answer. */
export function statsTotals(buckets: readonly { succeeded: number; failed: number; timed_out: number; cancelled: number; expired: number; webhook_delivered: number; webhook_failed: number }[]) {
  const t = { runs: 0, succeeded: 0, failed: 0, timed_out: 0, cancelled: 0, expired: 0, webhook_delivered: 0, webhook_failed: 0 };
  for (const b of buckets) {
    t.succeeded += b.succeeded;
    t.failed += b.failed;
    t.timed_out += b.timed_out;
    t.cancelled += b.cancelled;
    t.expired += b.expired;
    t.webhook_delivered += b.webhook_delivered;
    t.webhook_failed += b.webhook_failed;
  }
  t.runs = t.succeeded + t.failed + t.timed_out + t.cancelled + t.expired;
  return t;
}

/** The runs table's filters, as `GET /v1/runs` takes them (empty: no filter). */
export interface RunFilters {
  app: string;
  status: string;
  /** `502` or a class, `5xx`. */
  status_code: string;
  /** `key:value` each. */
  labels: string[];
  /** ISO 8601. */
  created_after: string;
  created_before: string;
  id_prefix: string;
}

/**
 * Whether a run belongs in the table under `f` (the same rules as the API),
 * so that a run the live feed brings is shown only when a reload would show it.
 */
export function runMatches(run: Run, f: RunFilters): boolean {
  if (f.app && run.app !== f.app) return false;
  if (f.status && run.status !== f.status) return false;
  if (f.status_code) {
    const code = run.status_code;
    const cls = /^([1-5])xx$/i.exec(f.status_code);
    if (code === null) return false;
    if (cls ? Math.floor(code / 100) !== Number(cls[1]) : String(code) !== f.status_code) return false;
  }
  for (const pair of f.labels) {
    const colon = pair.indexOf(":");
    if (run.labels?.[pair.slice(0, colon)] !== pair.slice(colon + 1)) return false;
  }
  const created = Date.parse(run.created_at);
  if (f.created_after && !(created > Date.parse(f.created_after))) return false;
  if (f.created_before && !(created < Date.parse(f.created_before))) return false;
  if (f.id_prefix && !run.run_id.replace(/-/g, "").startsWith(f.id_prefix.replace(/-/g, "").toLowerCase())) return false;
  return true;
}

/** `team:ml, job:42` (spaces or commas between) as the list of `label` filters. */
export function parseLabelList(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** An ISO time as a `datetime-local` input shows it (local time, to the minute); "" for none. */
export function toLocalInput(iso: string): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A `datetime-local` input's value as ISO 8601 (UTC); "" for none. */
export function fromLocalInput(value: string): string {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

/** Cumulative sums of stacked bar series, bottom first: where each series' bar starts (y0) and ends (y1) in every bucket. */
export function stackBars(values: readonly (readonly (number | null)[])[]): { y0: number[]; y1: number[] }[] {
  const n = values[0]?.length ?? 0;
  const below = new Array<number>(n).fill(0);
  return values.map((vs) => {
    const y0 = below.slice();
    for (let i = 0; i < n; i++) below[i]! += vs[i] ?? 0;
    return { y0, y1: below.slice() };
  });
}

/** An x axis tick of the overview: `14:05`; for windows of 15 min buckets and more, `05-01 14:00` at midnight and the time otherwise. */
export function tickLabel(seconds: number, bucketSeconds: number): string {
  const d = new Date(seconds * 1000);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (bucketSeconds < 900) return time;
  return d.getHours() === 0 && d.getMinutes() === 0 ? `${pad(d.getMonth() + 1)}-${pad(d.getDate())}` : time;
}
