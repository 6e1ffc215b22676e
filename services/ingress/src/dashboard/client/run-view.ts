import { ApiError, api } from "./api.js";
import { badge, fill, h, type Child } from "./dom.js";
import { formatDuration, formatTime, isFinished, runDurationMs, statusLabel } from "./format.js";
import { bodyBlock, deliveriesBlock, headersTable, timelineBlock } from "./run-sections.js";
import { openStream, type Stream } from "./sse.js";
import type { Delivery, Run, RunRequest, RunResponse } from "./types.js";
import { BASE, type ViewContext } from "./view.js";

/**
 * One run: its summary, timeline, request, response and webhook
 * deliveries, with cancel, retry and redeliver. The run's own SSE stream
 * (`GET /v1/runs/{id}/events`) keeps it live until it finishes; after that,
 * while its webhook is pending, the run and its deliveries are re-read every
 * two seconds (webhook progress is not on that stream).
 */

const WEBHOOK_POLL_MS = 2000;

export function runView(root: HTMLElement, ctx: ViewContext, runId: string): () => void {
  const ac = new AbortController();
  let run: Run | null = null;
  let delivery: Delivery | null = null;
  let responseFor = "";
  let stream: Stream | undefined;
  let webhookTimer: ReturnType<typeof setInterval> | undefined;

  const title = h("h1", { class: "run-title" }, "Run ", h("span", { class: "mono" }, runId));
  const statusSlot = h("span", { class: "run-status" });
  const cancelBtn = h("button", { type: "button", class: "danger", "data-action": "cancel" }, "Cancel");
  const retryBtn = h("button", { type: "button", "data-action": "retry" }, "Retry");
  const redeliverBtn = h("button", { type: "button", "data-action": "redeliver" }, "Redeliver webhook");
  const summary = h("dl", { class: "summary" });
  const timelineSlot = h("div");
  const requestSlot = h("div", null, h("p", { class: "muted" }, "Loading…"));
  const responseSlot = h("div", null, h("p", { class: "muted" }, "Loading…"));
  const webhookSection = h("section", { class: "panel", hidden: true }, h("h2", null, "Webhook deliveries"));
  const webhookSlot = h("div");
  webhookSection.appendChild(webhookSlot);
  const errorBox = h("p", { class: "error", role: "alert", hidden: true });

  fill(
    root,
    h("p", { class: "crumbs" }, h("a", { href: `${BASE}/runs` }, "← Runs")),
    h("div", { class: "run-head" }, title, statusSlot, h("div", { class: "actions" }, cancelBtn, retryBtn, redeliverBtn)),
    errorBox,
    h("section", { class: "panel" }, h("h2", null, "Summary"), summary),
    h("section", { class: "panel" }, h("h2", null, "Timeline"), timelineSlot),
    h("div", { class: "two-col" }, h("section", { class: "panel" }, h("h2", null, "Request"), requestSlot), h("section", { class: "panel" }, h("h2", null, "Response"), responseSlot)),
    webhookSection,
  );

  const fail = (err: unknown) => {
    if (ac.signal.aborted) return;
    errorBox.textContent = (err as Error).message;
    errorBox.hidden = false;
  };

  function renderSummary(r: Run): void {
    const row = (k: string, ...v: Child[]) => h("div", null, h("dt", null, k), h("dd", null, ...v));
    fill(statusSlot, badge(r.status, statusLabel(r.status), { "data-status": r.status }));
    fill(
      summary,
      row("App", h("a", { href: `${BASE}/runs?app=${encodeURIComponent(r.app)}` }, r.app)),
      row("Mode", badge(`mode-${r.mode}`, r.mode)),
      row("Call", h("span", { class: "mono" }, `${r.method} ${r.path}`)),
      row("Created", formatTime(r.created_at)),
      // The run's own queue deadline (queue TTL, RunPod's policy.ttl), only when it has one.
      r.expires_at
        ? row("Queue deadline", h("time", { datetime: r.expires_at, title: "Not started by then, the run ends expired" }, formatTime(r.expires_at)))
        : [],
      row("Started", formatTime(r.started_at)),
      row("Finished", formatTime(r.finished_at)),
      row("Duration", h("span", { class: "duration" }, formatDuration(runDurationMs(r)))),
      row("Attempts", `${r.attempt} of ${Math.max(r.max_attempts, 1)}`),
      row("Status code", r.status_code === null ? "—" : String(r.status_code)),
      r.error_code ? row("Error", h("span", { class: "mono" }, r.error_code), r.error_message ? ` — ${r.error_message}` : "") : [],
      row("Timeout", `${r.timeout_seconds} s`),
      row("Priority", String(r.priority)),
      row("Webhook", r.webhook_url ? [badge(`wh-${r.webhook_state}`, r.webhook_state), " ", h("span", { class: "mono wrap" }, r.webhook_url)] : "—"),
      r.retry_of ? row("Retry of", h("a", { href: `${BASE}/runs/${r.retry_of}`, class: "mono" }, r.retry_of)) : [],
      r.idempotency_key ? row("Idempotency key", h("span", { class: "mono wrap" }, r.idempotency_key)) : [],
      row(
        "Labels",
        Object.keys(r.labels ?? {}).length === 0
          ? "—"
          : h(
              "span",
              { class: "labels" },
              Object.entries(r.labels ?? {}).map(([k, v]) =>
                h("a", { href: `${BASE}/runs?label=${encodeURIComponent(`${k}:${v}`)}`, class: "label", title: `Runs labelled ${k}:${v}`, "data-label": k }, `${k}=${v}`),
              ),
            ),
      ),
    );
    const finished = isFinished(r.status);
    cancelBtn.disabled = finished;
    retryBtn.disabled = !finished || r.mode !== "async";
    retryBtn.title = r.mode === "sync" ? "Sync calls store no request body: nothing to retry" : "";
    redeliverBtn.hidden = !r.webhook_url;
    redeliverBtn.disabled = !finished;
  }

  function setRun(next: Run): void {
    run = next;
    renderSummary(next);
    fill(timelineSlot, timelineBlock(next, delivery));
    const finished = isFinished(next.status);
    // Its stream has ended: nothing live on this page any more.
    if (finished) ctx.setLive(null);
    const key = `${next.status}|${next.attempt}`;
    if (finished && responseFor !== key) {
      responseFor = key;
      void loadResponse(next);
    } else if (!finished) {
      fill(responseSlot, h("p", { class: "muted" }, next.status === "running" ? "The app is working on it…" : "Not called yet."));
    }
    webhookSection.hidden = !next.webhook_url;
    if (next.webhook_url && finished) void loadDelivery();
    const polling = finished && next.webhook_state === "pending";
    if (polling && !webhookTimer) webhookTimer = setInterval(() => void refresh(), WEBHOOK_POLL_MS);
    if (!polling && webhookTimer) {
      clearInterval(webhookTimer);
      webhookTimer = undefined;
    }
  }

  async function refresh(): Promise<void> {
    try {
      setRun(await api<Run>(`/v1/runs/${runId}`, { signal: ac.signal }));
    } catch (err) {
      fail(err);
    }
  }

  async function loadDelivery(): Promise<void> {
    try {
      delivery = await api<Delivery>(`/v1/runs/${runId}/deliveries`, { signal: ac.signal });
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) return fail(err);
      delivery = null;
    }
    fill(webhookSlot, deliveriesBlock(delivery));
    if (run) fill(timelineSlot, timelineBlock(run, delivery));
  }

  async function loadResponse(r: Run): Promise<void> {
    try {
      const res = await api<RunResponse>(`/v1/runs/${runId}/result?format=preview`, { signal: ac.signal });
      const noAnswer = res.status_code === null;
      fill(
        responseSlot,
        noAnswer
          ? h("p", { class: "muted" }, `No response from the app${r.error_code ? ` (${r.error_code}${r.error_message ? `: ${r.error_message}` : ""})` : ""}.`)
          : [
              h("p", { class: "mono" }, `HTTP ${res.status_code}`, res.content_type ? ` · ${res.content_type}` : ""),
              headersTable(res.headers),
              res.body_gone
                ? h("p", { class: "muted" }, "Body no longer stored (dropped after the retention period, or erased).")
                : bodyBlock(res, res.content_type, r.mode === "sync" ? "Sync calls are recorded without bodies." : "Empty body."),
              res.body_truncated ? h("p", { class: "muted" }, "The app sent more than the stored limit; the stored body is cut.") : null,
            ],
      );
    } catch (err) {
      fill(responseSlot, h("p", { class: "error" }, (err as Error).message));
    }
  }

  async function loadRequest(): Promise<void> {
    try {
      const req = await api<RunRequest>(`/v1/runs/${runId}/request`, { signal: ac.signal });
      const qs = req.query ? `?${req.query}` : "";
      fill(
        requestSlot,
        h("p", { class: "mono wrap" }, `${req.method} ${req.path}${qs}`),
        headersTable(req.headers),
        req.body_stored ? bodyBlock(req, null, "Empty body.") : h("p", { class: "muted" }, "Body not stored (sync calls are recorded without bodies; stored bodies are dropped after the retention period)."),
      );
    } catch (err) {
      fill(requestSlot, h("p", { class: "error" }, (err as Error).message));
    }
  }

  const act = (btn: HTMLButtonElement, work: () => Promise<void>) => {
    btn.addEventListener("click", () => {
      btn.disabled = true;
      work()
        .catch((err: unknown) => ctx.toast((err as Error).message, "error"))
        .finally(() => {
          if (run) renderSummary(run);
        });
    });
  };
  act(cancelBtn, async () => {
    if (!confirm("Cancel this run? A call in progress is aborted.")) return;
    setRun(await api<Run>(`/v1/runs/${runId}/cancel`, { method: "POST" }));
    ctx.toast("Run cancelled.");
  });
  act(retryBtn, async () => {
    const res = await api<{ run_id: string }>(`/v1/runs/${runId}/retry`, { method: "POST" });
    ctx.toast("Retry submitted as a new run.");
    ctx.navigate(`${BASE}/runs/${res.run_id}`);
  });
  act(redeliverBtn, async () => {
    delivery = await api<Delivery>(`/v1/runs/${runId}/webhook/redeliver`, { method: "POST" });
    ctx.toast("Webhook queued for redelivery.");
    await refresh();
    fill(webhookSlot, deliveriesBlock(delivery));
  });

  void (async () => {
    let first: Run;
    try {
      first = await api<Run>(`/v1/runs/${runId}`, { signal: ac.signal });
      setRun(first);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        fill(root, h("section", { class: "panel" }, h("h1", null, "Run not found"), h("p", null, h("a", { href: `${BASE}/runs` }, "Back to runs"))));
        return;
      }
      return fail(err);
    }
    void loadRequest();
    if (isFinished(first.status)) return;
    stream = openStream(`/v1/runs/${runId}/events`, {
      onLive: (on) => ctx.setLive(on),
      onEvent: (ev) => {
        if (ev.event === "run") setRun(JSON.parse(ev.data) as Run);
      },
      // The stream ends when the run finishes; before that, reconnect.
      reconnect: () => !isFinished((run ?? first).status),
      onFatal: fail,
    });
  })();

  const tick = setInterval(() => {
    if (run?.status !== "running") return;
    const cell = summary.querySelector(".duration");
    if (cell) cell.textContent = formatDuration(runDurationMs(run));
  }, 1000);

  return () => {
    ac.abort();
    stream?.close();
    clearInterval(tick);
    if (webhookTimer) clearInterval(webhookTimer);
    ctx.setLive(null);
  };
}
