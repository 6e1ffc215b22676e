import { api, query } from "./api.js";
import { createChart, OKABE_ITO, type Chart, type ChartData, type ChartSeries } from "./charts.js";
import { fill, h } from "./dom.js";
import { bucketLabel, deliveryRate, formatDuration, statsTotals, tickLabel } from "./format.js";
import type { App, Stats, StatsBucket } from "./types.js";
import { BASE, type ViewContext } from "./view.js";

/**
 * The overview, the dashboard's landing page: for the last hour, day or
 * week, all apps or one, one mode or both, the runs per bucket stacked by
 * outcome, queue wait and run duration (p50, p95), webhook deliveries and
 * their success rate, and the calls in flight and queued now. Everything
 * comes from one `GET /v1/stats` per refresh (one query in Postgres,
 * whatever the number of runs). A table of the same figures sits under the
 * charts for screen readers and for copying.
 */

const WINDOWS = [
  { id: "1h", label: "1 hour", refreshMs: 10_000 },
  { id: "24h", label: "24 hours", refreshMs: 60_000 },
  { id: "7d", label: "7 days", refreshMs: 300_000 },
] as const;

const count = (v: number) => String(Math.round(v));
const duration = (v: number) => formatDuration(v);
const percent = (v: number) => `${v.toFixed(v % 1 === 0 ? 0 : 1)} %`;
const axisPercent = (v: number) => `${Math.round(v)}%`;

/** The series of each chart, from one stats answer. */
function chartsOf(stats: Stats): { runs: ChartData; wait: ChartData; duration: ChartData; webhooks: ChartData } {
  const b = stats.buckets;
  const starts = b.map((x) => Date.parse(x.start) / 1000);
  const label = (s: number) => bucketLabel(s, stats.bucket_seconds);
  const base = { starts, bucketSeconds: stats.bucket_seconds, bucketLabel: label, tickLabel: (s: number) => tickLabel(s, stats.bucket_seconds) };
  const bars = (name: string, color: string, key: keyof StatsBucket): ChartSeries => ({
    label: name,
    color,
    kind: "bars",
    values: b.map((x) => x[key] as number),
    format: count,
  });
  const line = (name: string, color: string, values: (number | null)[], format: (v: number) => string, dash?: number[]): ChartSeries => ({
    label: name,
    color,
    kind: "line",
    values,
    format,
    ...(dash ? { dash } : {}),
  });
  return {
    runs: {
      ...base,
      integerLeft: true,
      series: [
        bars("Succeeded", OKABE_ITO.bluishGreen, "succeeded"),
        bars("Failed", OKABE_ITO.vermillion, "failed"),
        bars("Timed out", OKABE_ITO.orange, "timed_out"),
        bars("Cancelled", OKABE_ITO.skyBlue, "cancelled"),
        bars("Expired", OKABE_ITO.reddishPurple, "expired"),
      ],
    },
    wait: {
      ...base,
      series: [
        line("p50", OKABE_ITO.blue, b.map((x) => x.queue_wait_p50_ms), duration),
        line("p95", OKABE_ITO.vermillion, b.map((x) => x.queue_wait_p95_ms), duration, [6, 4]),
      ],
    },
    duration: {
      ...base,
      series: [
        line("p50", OKABE_ITO.blue, b.map((x) => x.run_p50_ms), duration),
        line("p95", OKABE_ITO.vermillion, b.map((x) => x.run_p95_ms), duration, [6, 4]),
      ],
    },
    webhooks: {
      ...base,
      integerLeft: true,
      rightRange: [0, 100],
      series: [
        bars("Delivered", OKABE_ITO.bluishGreen, "webhook_delivered"),
        bars("Failed", OKABE_ITO.vermillion, "webhook_failed"),
        { ...line("Success rate", OKABE_ITO.blue, b.map((x) => deliveryRate(x.webhook_delivered, x.webhook_failed)), percent, [2, 3]), axis: "right", axisFormat: axisPercent },
      ],
    },
  };
}

export function overviewView(root: HTMLElement, ctx: ViewContext): () => void {
  const params = new URLSearchParams(location.search);
  const state = {
    window: (WINDOWS.find((w) => w.id === params.get("window"))?.id ?? "1h") as (typeof WINDOWS)[number]["id"],
    app: params.get("app") ?? "",
    mode: params.get("mode") ?? "",
  };
  const ac = new AbortController();
  let seq = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  const charts = new Map<string, Chart>();

  const windowButtons = WINDOWS.map((w) =>
    h("button", { type: "button", class: "ghost", "data-window": w.id, "aria-pressed": String(w.id === state.window) }, w.label),
  );
  const appSelect = h("select", { name: "app", "aria-label": "App" }, h("option", { value: "" }, "All apps"));
  const modeSelect = h(
    "select",
    { name: "mode", "aria-label": "Mode" },
    h("option", { value: "" }, "Async and sync"),
    h("option", { value: "async" }, "Async"),
    h("option", { value: "sync" }, "Sync"),
  );
  modeSelect.value = state.mode;
  const gauges = h("div", { class: "kpis" });
  const errorBox = h("p", { class: "error", role: "alert", hidden: true });
  const note = h("p", { class: "muted", hidden: true });
  const panel = (id: string, title: string, hint: string) =>
    h("section", { class: "panel chart-panel", "data-chart": id }, h("h2", null, title, " ", h("span", { class: "muted hint" }, hint)));
  const panels = {
    runs: panel("runs", "Runs", "ended per interval, by outcome"),
    wait: panel("wait", "Queue wait", "creation to first start, p50 and p95"),
    duration: panel("duration", "Run duration", "first start to end, p50 and p95"),
    webhooks: panel("webhooks", "Webhooks", "settled per interval, and the share delivered"),
  };
  const figures = h("tbody");
  const figuresTable = h(
    "details",
    { class: "figures panel" },
    h("summary", null, "Figures as a table"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "figures-table" },
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            ["Interval", "Succeeded", "Failed", "Timed out", "Cancelled", "Expired", "Wait p50", "Wait p95", "Run p50", "Run p95", "Webhooks delivered", "Webhooks failed"].map((c) =>
              h("th", { scope: "col" }, c),
            ),
          ),
        ),
        figures,
      ),
    ),
  );

  fill(
    root,
    h(
      "div",
      { class: "toolbar" },
      h("h1", null, "Overview"),
      h("div", { class: "filters" }, h("div", { class: "segmented", role: "group", "aria-label": "Window" }, windowButtons), appSelect, modeSelect),
    ),
    errorBox,
    gauges,
    note,
    h("div", { class: "charts" }, panels.runs, panels.wait, panels.duration, panels.webhooks),
    figuresTable,
  );

  function kpi(name: string, value: string, key: string, detail?: string): HTMLElement {
    return h("div", { class: "kpi", "data-kpi": key }, h("span", { class: "kpi-n" }, value), h("span", { class: "kpi-l" }, name), detail ? h("span", { class: "muted kpi-d" }, detail) : null);
  }

  function render(stats: Stats): void {
    const t = statsTotals(stats.buckets);
    const rate = deliveryRate(t.webhook_delivered, t.webhook_failed);
    const windowLabel = WINDOWS.find((w) => w.id === stats.window)?.label ?? stats.window;
    fill(
      gauges,
      kpi("in flight now", String(stats.in_flight), "in_flight"),
      kpi("queued now", String(stats.queued), "queued"),
      kpi(`runs ended, last ${windowLabel}`, String(t.runs), "runs"),
      kpi("succeeded", t.runs === 0 ? "—" : percent(Math.round((t.succeeded / t.runs) * 1000) / 10), "success", `${t.succeeded} of ${t.runs}`),
      kpi("webhooks delivered", rate === null ? "—" : percent(rate), "webhooks", `${t.webhook_delivered} of ${t.webhook_delivered + t.webhook_failed}`),
    );
    note.hidden = t.runs > 0 || t.webhook_delivered + t.webhook_failed > 0;
    fill(note, `No run ended in the last ${windowLabel}${state.app ? ` for ${state.app}` : ""}. `, h("a", { href: `${BASE}/runs` }, "See the runs"), ".");
    const data = chartsOf(stats);
    for (const [id, chartData] of Object.entries(data)) {
      const existing = charts.get(id);
      if (existing) existing.update(chartData);
      else charts.set(id, createChart(panels[id as keyof typeof panels], chartData, window.innerWidth <= 720 ? 180 : 220));
    }
    const ms = (v: number | null) => (v === null ? "—" : formatDuration(v));
    fill(
      figures,
      stats.buckets
        .filter((x) => x.succeeded + x.failed + x.timed_out + x.cancelled + x.expired + x.webhook_delivered + x.webhook_failed > 0)
        .reverse()
        .map((x) =>
          h(
            "tr",
            { "data-start": x.start },
            h("th", { scope: "row" }, h("time", { datetime: x.start }, bucketLabel(Date.parse(x.start) / 1000, stats.bucket_seconds))),
            [x.succeeded, x.failed, x.timed_out, x.cancelled, x.expired].map((n) => h("td", { class: "num" }, String(n))),
            [x.queue_wait_p50_ms, x.queue_wait_p95_ms, x.run_p50_ms, x.run_p95_ms].map((v) => h("td", { class: "num" }, ms(v))),
            h("td", { class: "num" }, String(x.webhook_delivered)),
            h("td", { class: "num" }, String(x.webhook_failed)),
          ),
        ),
    );
  }

  async function load(): Promise<void> {
    const mine = ++seq;
    try {
      const stats = await api<Stats>(`/v1/stats${query({ window: state.window, app: state.app, mode: state.mode })}`, { signal: ac.signal });
      if (mine !== seq || ac.signal.aborted) return;
      errorBox.hidden = true;
      render(stats);
      root.dataset.loaded = `${stats.window}|${state.app}|${state.mode}`;
    } catch (err) {
      if (ac.signal.aborted || mine !== seq) return;
      errorBox.textContent = (err as Error).message;
      errorBox.hidden = false;
    }
  }

  function schedule(): void {
    if (timer) clearInterval(timer);
    const every = WINDOWS.find((w) => w.id === state.window)!.refreshMs;
    timer = setInterval(() => {
      if (document.visibilityState === "visible") void load();
    }, every);
  }

  function apply(): void {
    history.replaceState(null, "", `${BASE}/overview${query({ window: state.window === "1h" ? "" : state.window, app: state.app, mode: state.mode })}`);
    for (const b of windowButtons) b.setAttribute("aria-pressed", String(b.dataset.window === state.window));
    delete root.dataset.loaded;
    schedule();
    void load();
  }
  for (const b of windowButtons) {
    b.addEventListener("click", () => {
      state.window = b.dataset.window as typeof state.window;
      apply();
    });
  }
  appSelect.addEventListener("change", () => {
    state.app = appSelect.value;
    apply();
  });
  modeSelect.addEventListener("change", () => {
    state.mode = modeSelect.value;
    apply();
  });

  void api<{ apps: App[] }>("/v1/apps", { signal: ac.signal })
    .then(({ apps }) => {
      const names = new Set(apps.map((a) => a.name));
      if (state.app) names.add(state.app);
      for (const name of [...names].sort()) appSelect.appendChild(h("option", { value: name }, name));
      appSelect.value = state.app;
    })
    .catch((err: unknown) => {
      if (!ac.signal.aborted) ctx.toast((err as Error).message, "error");
    });
  const onVisible = () => {
    if (document.visibilityState === "visible") void load();
  };
  document.addEventListener("visibilitychange", onVisible);
  schedule();
  void load();
  ctx.setLive(null);

  return () => {
    ac.abort();
    if (timer) clearInterval(timer);
    document.removeEventListener("visibilitychange", onVisible);
    for (const c of charts.values()) c.destroy();
  };
}
