import { api } from "./api.js";
import { badge, fill, h } from "./dom.js";
import { formatDuration, statusLabel } from "./format.js";
import type { App, Outcomes, RunStatus } from "./types.js";
import { BASE, type ViewContext } from "./view.js";

/**
 * The project's apps: each app's settings, its calls in flight and
 * queue depth now, and the outcomes of its runs of the last hour
 * (`GET /v1/apps/{app}/outcomes`). The apps are re-read every 5 s while the
 * tab is visible, their outcome counts every 30 s.
 */

const REFRESH_MS = 5000;
/** Outcome counts page through up to 2000 runs an app: read them less often than the gauges. */
const OUTCOMES_REFRESH_MS = 30_000;
const OUTCOME_ORDER: RunStatus[] = ["succeeded", "failed", "timed_out", "cancelled", "expired", "running", "dispatched", "queued"];

export function appsView(root: HTMLElement, ctx: ViewContext): () => void {
  const ac = new AbortController();
  let outcomes = new Map<string, Outcomes | null>();
  let outcomesAt = 0;
  const list = h("div", { class: "apps" }, h("p", { class: "muted" }, "Loading…"));
  const errorBox = h("p", { class: "error", role: "alert", hidden: true });
  fill(root, h("div", { class: "toolbar" }, h("h1", null, "Apps")), errorBox, list);

  function card(app: App): HTMLElement {
    const counted = outcomes.get(app.name) ?? null;
    const setting = (k: string, v: string) => [h("dt", null, k), h("dd", null, v)];
    const limit = app.max_concurrency === 0 ? "unlimited" : String(app.max_concurrency);
    const r = app.retry;
    const retry =
      r.max_attempts <= 1
        ? "no retries"
        : `${r.max_attempts} attempts, backoff ${formatDuration(r.initial_backoff_seconds * 1000)}–${formatDuration(r.max_backoff_seconds * 1000)}${r.idempotent ? ", any failure" : ""}`;
    const counts = counted
      ? OUTCOME_ORDER.filter((s) => (counted.counts[s] ?? 0) > 0).map((s) => badge(s, `${counted.counts[s]} ${statusLabel(s)}`, { "data-outcome": s }))
      : [];
    return h(
      "article",
      { class: "panel app", "data-app": app.name },
      h("header", { class: "app-head" }, h("h2", null, app.name), h("a", { href: `${BASE}/runs?app=${encodeURIComponent(app.name)}` }, "Runs →")),
      h("p", { class: "mono wrap muted" }, app.url),
      h(
        "div",
        { class: "gauges" },
        h("div", { class: "gauge" }, h("span", { class: "gauge-n", "data-gauge": "in_flight" }, String(app.in_flight)), h("span", null, `in flight${app.max_concurrency ? ` of ${limit}` : ""}`)),
        h("div", { class: "gauge" }, h("span", { class: "gauge-n", "data-gauge": "queued" }, String(app.queued)), h("span", null, "queued")),
      ),
      h(
        "div",
        { class: "outcomes" },
        h("span", { class: "muted" }, "Last hour: "),
        counted === null ? "—" : counts.length === 0 ? h("span", { class: "muted" }, "no runs") : counts,
        counted?.capped ? h("span", { class: "muted" }, ` (newest ${counted.total} counted)`) : null,
      ),
      h(
        "dl",
        { class: "settings" },
        setting("Timeout", formatDuration(app.timeout_seconds * 1000)),
        setting("Concurrency", limit),
        setting("Retry", retry),
        setting("Queue TTL", app.queue_ttl_seconds === 0 ? "never expires" : formatDuration(app.queue_ttl_seconds * 1000)),
      ),
    );
  }

  async function load(): Promise<void> {
    try {
      const { apps } = await api<{ apps: App[] }>("/v1/apps", { signal: ac.signal });
      if (Date.now() - outcomesAt >= OUTCOMES_REFRESH_MS || apps.some((a) => !outcomes.has(a.name))) {
        const counted = await Promise.all(
          apps.map((a) =>
            api<Outcomes>(`/v1/apps/${encodeURIComponent(a.name)}/outcomes`, { signal: ac.signal }).catch((err: unknown) => {
              if (ac.signal.aborted) throw err;
              return null; // shown as "—"; the gauges still update
            }),
          ),
        );
        outcomes = new Map(apps.map((a, i) => [a.name, counted[i] ?? null]));
        outcomesAt = Date.now();
      }
      if (ac.signal.aborted) return;
      errorBox.hidden = true;
      if (apps.length === 0) {
        fill(
          list,
          h("p", null, "No apps yet. Register one:"),
          h("pre", { class: "code" }, `curl -X PUT "${location.origin}/v1/apps/thumbnails" \\\n  -H "Authorization: Bearer $LONGHAUL_API_KEY" \\\n  -d '{"url":"http://thumbnails.internal:8000","timeout_seconds":3600}'`),
        );
        return;
      }
      fill(list, apps.map(card));
    } catch (err) {
      if (ac.signal.aborted) return;
      errorBox.textContent = (err as Error).message;
      errorBox.hidden = false;
    }
  }

  void load();
  const timer = setInterval(() => {
    if (document.visibilityState === "visible") void load();
  }, REFRESH_MS);
  ctx.setLive(null);
  return () => {
    ac.abort();
    clearInterval(timer);
  };
}
