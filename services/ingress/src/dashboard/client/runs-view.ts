import { api, query } from "./api.js";
import { badge, fill, h, type Child } from "./dom.js";
import {
  compareRuns,
  formatDuration,
  formatTime,
  fromLocalInput,
  isFinished,
  parseLabelList,
  runDurationMs,
  runMatches,
  statusLabel,
  toLocalInput,
  type RunFilters,
} from "./format.js";
import { openStream, type Stream } from "./sse.js";
import type { App, Run, RunPage, RunStatus } from "./types.js";
import { BASE, type ViewContext } from "./view.js";

/**
 * The runs table: filters by app, status, the app's status code, labels,
 * creation time and id prefix (every filter `GET /v1/runs` takes, kept in
 * the page's URL), pages through the project's runs newest first, and stays
 * live. Live means two things:
 *
 * - one SSE stream, `GET /v1/events?app=&run=<in-flight ids>`, brings new
 *   runs and every state change of the unfinished ones as they happen;
 * - a reload of the page every few seconds while the tab is visible (and on
 *   each reconnect) catches what no stream carries: webhook states settling
 *   after a run finished, runs past the feed's watch limit, missed frames.
 */

const PAGE_SIZE = 25;
const REFRESH_MS = 5000;
const STATUSES: RunStatus[] = ["queued", "dispatched", "running", "succeeded", "failed", "timed_out", "cancelled", "expired"];

const td = (label: string, ...children: Child[]) => h("td", { "data-label": label }, ...children);

/** What a row shows; a row is redrawn only when this changes. */
const rowKey = (r: Run) => `${r.status}|${r.attempt}|${r.webhook_state}|${r.finished_at}|${r.attempts.length}`;

export function runsView(root: HTMLElement, ctx: ViewContext): () => void {
  const params = new URLSearchParams(location.search);
  const filters: RunFilters = {
    app: params.get("app") ?? "",
    status: params.get("status") ?? "",
    status_code: params.get("status_code") ?? "",
    labels: params.getAll("label"),
    created_after: params.get("created_after") ?? "",
    created_before: params.get("created_before") ?? "",
    id_prefix: params.get("id_prefix") ?? "",
  };
  const ac = new AbortController();
  /** Cursors of the pages visited: the last is the current page's. */
  let cursors = [""];
  let nextCursor: string | null = null;
  /** Live inserts pushed rows off page 1: the next cursor no longer fits. */
  let pageStale = false;
  let rows: Run[] = [];
  const rowEls = new Map<string, HTMLTableRowElement>();
  let loadSeq = 0;
  let feed: Stream | undefined;
  let feedApp = "";
  let feedKnown = new Set<string>();

  const appSelect = h("select", { name: "app", "aria-label": "App" }, h("option", { value: "" }, "All apps"));
  const statusSelect = h(
    "select",
    { name: "status", "aria-label": "Status" },
    h("option", { value: "" }, "All statuses"),
    STATUSES.map((s) => h("option", { value: s }, statusLabel(s))),
  );
  statusSelect.value = filters.status;
  const codeInput = h("input", { name: "status_code", size: 8, placeholder: "502, 5xx", "aria-label": "Status code", value: filters.status_code });
  const labelInput = h("input", { name: "label", placeholder: "team:ml", "aria-label": "Labels (key:value)", value: filters.labels.join(" ") });
  const afterInput = h("input", { type: "datetime-local", name: "created_after", "aria-label": "Created after", value: toLocalInput(filters.created_after) });
  const beforeInput = h("input", { type: "datetime-local", name: "created_before", "aria-label": "Created before", value: toLocalInput(filters.created_before) });
  const prefixInput = h("input", { name: "id_prefix", size: 10, placeholder: "Id prefix", "aria-label": "Run id prefix", value: filters.id_prefix });
  const field = (label: string, input: HTMLElement) => h("label", { class: "field" }, h("span", null, label), input);
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "runs" },
    h("thead", null, h("tr", null, ["Run", "App", "Mode", "Status", "Created", "Duration", "Attempts", "Webhook"].map((c) => h("th", { scope: "col" }, c)))),
    tbody,
  );
  const empty = h("div", { class: "empty", hidden: true });
  const errorBox = h("p", { class: "error", role: "alert", hidden: true });
  const newer = h("button", { type: "button", class: "ghost" }, "← Newer");
  const older = h("button", { type: "button", class: "ghost" }, "Older →");
  const pageLabel = h("span", { class: "muted" });
  const matches = (r: Run) => runMatches(r, filters);
  const filterQuery = () => ({
    app: filters.app,
    status: filters.status,
    status_code: filters.status_code,
    label: filters.labels,
    created_after: filters.created_after,
    created_before: filters.created_before,
    id_prefix: filters.id_prefix,
  });
  const filtered = () => Object.entries(filterQuery()).some(([k, v]) => k !== "app" && k !== "status" && v.length > 0);
  fill(
    root,
    h("div", { class: "toolbar" }, h("h1", null, "Runs"), h("div", { class: "filters" }, appSelect, statusSelect)),
    h(
      "details",
      // Open on wide screens, and on a phone when one of these filters is in use.
      { class: "more", open: window.innerWidth > 720 || filtered() },
      h("summary", null, "More filters"),
      h(
        "form",
        { class: "filters more-filters", "aria-label": "More filters" },
        field("Status code", codeInput),
        field("Labels", labelInput),
        field("Created after", afterInput),
        field("Created before", beforeInput),
        field("Id prefix", prefixInput),
        h("button", { type: "submit", class: "ghost" }, "Apply"),
      ),
    ),
    errorBox,
    h("div", { class: "table-wrap" }, table),
    empty,
    h("nav", { class: "pager", "aria-label": "Pages" }, newer, pageLabel, older),
  );


  function renderRow(tr: HTMLTableRowElement, run: Run): void {
    tr.dataset.runId = run.run_id;
    tr.dataset.status = run.status;
    tr.dataset.key = rowKey(run);
    fill(
      tr,
      td("Run", h("a", { href: `${BASE}/runs/${run.run_id}`, class: "mono", title: run.run_id }, run.run_id.slice(0, 8))),
      td("App", run.app),
      td("Mode", badge(`mode-${run.mode}`, run.mode)),
      td("Status", badge(run.status, statusLabel(run.status), { "data-status": run.status })),
      td("Created", h("time", { datetime: run.created_at, title: run.created_at }, formatTime(run.created_at))),
      h("td", { "data-label": "Duration", class: "duration num" }, formatDuration(runDurationMs(run))),
      h("td", { "data-label": "Attempts", class: "num" }, `${run.attempt}/${Math.max(run.max_attempts, 1)}`),
      td("Webhook", run.webhook_state === "none" ? h("span", { class: "muted" }, "—") : badge(`wh-${run.webhook_state}`, run.webhook_state)),
    );
  }

  function render(changed?: string): void {
    const keep = new Set(rows.map((r) => r.run_id));
    for (const [id, tr] of rowEls) {
      if (!keep.has(id)) {
        tr.remove();
        rowEls.delete(id);
      }
    }
    rows.forEach((run, i) => {
      let tr = rowEls.get(run.run_id);
      if (!tr) {
        tr = h("tr", { class: "clickable" });
        tr.addEventListener("click", (ev) => {
          if (!(ev.target as Element).closest("a")) ctx.navigate(`${BASE}/runs/${run.run_id}`);
        });
        rowEls.set(run.run_id, tr);
      }
      if (tr.dataset.key !== rowKey(run)) renderRow(tr, run);
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] ?? null);
    });
    if (changed) {
      const tr = rowEls.get(changed);
      tr?.classList.remove("flash");
      void tr?.offsetWidth; // restarts the CSS animation
      tr?.classList.add("flash");
    }
    table.hidden = rows.length === 0;
    empty.hidden = rows.length > 0;
    if (rows.length === 0) renderEmpty();
    newer.disabled = cursors.length === 1;
    older.disabled = !nextCursor && !pageStale;
    pageLabel.textContent = `Page ${cursors.length}`;
  }

  function renderEmpty(): void {
    if (filters.app || filters.status || filtered() || cursors.length > 1) {
      fill(empty, h("p", null, "No runs match these filters."));
      return;
    }
    const app = filters.app || (appSelect.options[1]?.value ?? "<app>");
    fill(
      empty,
      h("p", null, "No runs yet. Call an app with ", h("code", null, "?async=true"), " and the run appears here at once:"),
      h("pre", { class: "code" }, `curl -X POST "${location.origin}/${ctx.project}/${app}/path?async=true" \\\n  -H "Authorization: Bearer $LONGHAUL_API_KEY" -d '{}'`),
    );
  }

  function showError(err: unknown): void {
    errorBox.textContent = (err as Error).message;
    errorBox.hidden = false;
  }

  async function load(): Promise<void> {
    const seq = ++loadSeq;
    try {
      const cursor = cursors[cursors.length - 1] ?? "";
      const page = await api<RunPage>(
        `/v1/runs${query({ ...filterQuery(), limit: String(PAGE_SIZE), cursor })}`,
        { signal: ac.signal },
      );
      if (seq !== loadSeq || ac.signal.aborted) return;
      rows = page.runs;
      nextCursor = page.next_cursor;
      pageStale = false;
      errorBox.hidden = true;
      render();
      ensureFeed();
    } catch (err) {
      if (!ac.signal.aborted && seq === loadSeq) showError(err);
    }
  }

  /** (Re)opens the feed when the filter changed or an in-flight row is not watched yet. */
  function ensureFeed(): void {
    const inFlight = rows.filter((r) => !isFinished(r.status)).map((r) => r.run_id);
    if (feed && feedApp === filters.app && inFlight.every((id) => feedKnown.has(id))) return;
    feed?.close();
    feedApp = filters.app;
    feedKnown = new Set(inFlight);
    let opened = false;
    feed = openStream(`/v1/events${query({ app: filters.app, run: inFlight.slice(0, PAGE_SIZE) })}`, {
      onLive: (on) => ctx.setLive(on),
      // After a reconnect, reload what the stream may have missed meanwhile.
      onOpen: () => {
        if (opened) void load();
        opened = true;
      },
      onEvent: (ev) => {
        if (ev.event !== "run") return;
        const run = JSON.parse(ev.data) as Run;
        feedKnown.add(run.run_id);
        upsert(run);
      },
      onFatal: (err) => showError(err),
    });
  }

  function upsert(run: Run): void {
    const i = rows.findIndex((r) => r.run_id === run.run_id);
    if (i >= 0) {
      const old = rows[i]!;
      // Feed frames of new runs carry no attempts; keep the ones we have.
      rows[i] = { ...old, ...run, attempts: run.attempts.length > 0 ? run.attempts : old.attempts };
      // The feed also repeats what the page already shows (its first look overlaps the load).
      if (rowKey(rows[i]!) === rowKey(old)) return;
    } else {
      if (cursors.length > 1 || !matches(run)) return;
      rows.push(run);
      rows.sort(compareRuns);
      if (rows.length > PAGE_SIZE) {
        rows = rows.slice(0, PAGE_SIZE);
        pageStale = true;
      }
    }
    render(run.run_id);
  }

  function applyFilters(): void {
    filters.app = appSelect.value;
    filters.status = statusSelect.value;
    filters.status_code = codeInput.value.trim();
    filters.labels = parseLabelList(labelInput.value);
    filters.created_after = fromLocalInput(afterInput.value);
    filters.created_before = fromLocalInput(beforeInput.value);
    filters.id_prefix = prefixInput.value.trim();
    const q = query(filterQuery());
    history.replaceState(null, "", `${BASE}/runs${q}`);
    cursors = [""];
    rows = [];
    render();
    void load();
  }
  appSelect.addEventListener("change", applyFilters);
  statusSelect.addEventListener("change", applyFilters);
  for (const input of [afterInput, beforeInput]) input.addEventListener("change", applyFilters);
  root.querySelector("form.more-filters")!.addEventListener("submit", (ev) => {
    ev.preventDefault();
    applyFilters();
  });
  newer.addEventListener("click", () => {
    cursors.pop();
    void load();
  });
  older.addEventListener("click", () => {
    void (async () => {
      if (pageStale) {
        // Page 1 moved under live inserts: take a fresh cursor first.
        await load();
      }
      if (!nextCursor) return;
      cursors.push(nextCursor);
      await load();
    })();
  });

  void api<{ apps: App[] }>("/v1/apps", { signal: ac.signal })
    .then(({ apps }) => {
      const names = new Set(apps.map((a) => a.name));
      if (filters.app) names.add(filters.app);
      for (const name of [...names].sort()) appSelect.appendChild(h("option", { value: name }, name));
      appSelect.value = filters.app;
      if (rows.length === 0) render();
    })
    .catch((err: unknown) => {
      if (!ac.signal.aborted) showError(err);
    });
  void load();

  const refresh = setInterval(() => {
    if (document.visibilityState === "visible") void load();
  }, REFRESH_MS);
  // Durations of running rows tick without a reload.
  const tick = setInterval(() => {
    for (const run of rows) {
      if (run.status !== "running") continue;
      const cell = rowEls.get(run.run_id)?.querySelector(".duration");
      if (cell) cell.textContent = formatDuration(runDurationMs(run));
    }
  }, 1000);
  const onVisible = () => {
    if (document.visibilityState === "visible") void load();
  };
  document.addEventListener("visibilitychange", onVisible);

  return () => {
    ac.abort();
    feed?.close();
    clearInterval(refresh);
    clearInterval(tick);
    document.removeEventListener("visibilitychange", onVisible);
    ctx.setLive(null);
  };
}
