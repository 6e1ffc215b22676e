/**
 * The dashboard's stylesheet, served as `/dashboard/assets/<version>/app.css`.
 * It lives in a .ts module so that `tsc -b` alone puts it in dist (the
 * Dockerfile and `npm run build` run nothing else). Status colours: queued
 * grey, dispatched violet, running blue, succeeded green, failed red, timed
 * out orange, cancelled slate, expired brown (the overview's charts use the
 * Okabe–Ito palette instead: client/charts.ts); at 720 px and below the
 * tables turn into one card per row, so a phone never scrolls sideways.
 */
export const DASHBOARD_CSS = `
:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --panel: #fff; --text: #1b1f24; --muted: #5f6b7a; --line: #dde2e8; --accent: #2563eb;
  --queued: #64748b; --dispatched: #7c3aed; --running: #2563eb; --succeeded: #15803d; --failed: #dc2626;
  --timed_out: #ea580c; --cancelled: #475569; --expired: #92400e; --pending: #b45309;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #0f1216; --panel: #171b21; --text: #e6e9ee; --muted: #97a3b3; --line: #2a313a; --accent: #60a5fa;
    --queued: #94a3b8; --dispatched: #a78bfa; --running: #60a5fa; --succeeded: #4ade80; --failed: #f87171;
    --timed_out: #fb923c; --cancelled: #94a3b8; --expired: #d6a46a; --pending: #fbbf24; }
}
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--text); }
body { min-height: 100vh; overflow-x: hidden; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
h1 { font-size: 20px; margin: 0; }
h2 { font-size: 15px; margin: 0 0 10px; }
[hidden] { display: none !important; }
.mono { font-family: var(--mono); font-size: 12.5px; }
.wrap { overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.error { color: var(--failed); margin: 8px 0; }
button, select, input {
  font: inherit; color: inherit; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px;
}
button { cursor: pointer; background: var(--accent); border-color: var(--accent); color: #fff; font-weight: 600; }
button.ghost { background: transparent; color: var(--text); border-color: var(--line); font-weight: 500; }
button.danger { background: var(--failed); border-color: var(--failed); }
button:disabled { opacity: .45; cursor: not-allowed; }
button:focus-visible, a:focus-visible, select:focus-visible, input:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }

.top { display: flex; align-items: center; gap: 14px; flex-wrap: wrap; padding: 10px 20px; background: var(--panel); border-bottom: 1px solid var(--line); }
.brand { font-weight: 800; font-size: 16px; color: var(--text); letter-spacing: .2px; }
.tabs { display: flex; gap: 4px; }
.tabs a { padding: 6px 10px; border-radius: 6px; color: var(--muted); font-weight: 600; }
.tabs a.active { color: var(--text); background: var(--bg); }
.spacer { flex: 1; }
.project { color: var(--muted); }
.live { font-size: 12px; font-weight: 600; color: var(--muted); display: inline-flex; align-items: center; gap: 6px; }
.live::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: var(--queued); }
.live[data-live="on"] { color: var(--succeeded); }
.live[data-live="on"]::before { background: var(--succeeded); animation: pulse 1.6s infinite; }
.live[data-live="off"] { color: var(--timed_out); }
.live[data-live="off"]::before { background: var(--timed_out); }
.live[data-live="idle"] { visibility: hidden; }

#view { max-width: 1280px; margin: 0 auto; padding: 18px 20px 60px; }
.toolbar { display: flex; align-items: center; justify-content: space-between; gap: 12px; flex-wrap: wrap; margin-bottom: 12px; }
.filters { display: flex; gap: 8px; flex-wrap: wrap; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 16px; margin-bottom: 14px; min-width: 0; }
.table-wrap { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 9px 12px; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { font-size: 12px; text-transform: uppercase; letter-spacing: .4px; color: var(--muted); background: var(--bg); }
tbody tr:last-child td { border-bottom: 0; }
tr.clickable { cursor: pointer; }
tr.clickable:hover { background: color-mix(in srgb, var(--accent) 6%, transparent); }
tr.flash { animation: flash 1.2s ease-out; }
.pager { display: flex; align-items: center; justify-content: center; gap: 12px; margin-top: 12px; }
.empty { background: var(--panel); border: 1px dashed var(--line); border-radius: 10px; padding: 18px; }
pre.code { font-family: var(--mono); font-size: 12.5px; background: var(--bg); border: 1px solid var(--line); border-radius: 8px; padding: 10px; overflow: auto; max-height: 420px; white-space: pre-wrap; overflow-wrap: anywhere; margin: 6px 0 0; }

.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; white-space: nowrap;
  color: var(--c, var(--muted)); background: color-mix(in srgb, var(--c, var(--muted)) 14%, transparent); border: 1px solid color-mix(in srgb, var(--c, var(--muted)) 35%, transparent); }
.badge-queued { --c: var(--queued); } .badge-dispatched { --c: var(--dispatched); } .badge-running { --c: var(--running); }
.badge-succeeded { --c: var(--succeeded); } .badge-failed { --c: var(--failed); } .badge-timed_out { --c: var(--timed_out); }
.badge-cancelled { --c: var(--cancelled); } .badge-expired { --c: var(--expired); }
.badge-running::before { content: ""; display: inline-block; width: 6px; height: 6px; margin-right: 5px; border-radius: 50%; background: currentColor; vertical-align: 1px; animation: pulse 1.6s infinite; }
.badge-wh-pending { --c: var(--pending); } .badge-wh-delivered { --c: var(--succeeded); } .badge-wh-failed { --c: var(--failed); } .badge-wh-none { --c: var(--muted); }
.badge-mode-async { --c: var(--accent); } .badge-mode-sync { --c: var(--muted); }

.crumbs { margin: 0 0 8px; }
.run-head { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; margin-bottom: 14px; }
.run-title { font-size: 18px; overflow-wrap: anywhere; min-width: 0; }
.run-title .mono { font-size: 16px; }
.actions { display: flex; gap: 8px; margin-left: auto; flex-wrap: wrap; }
.summary { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px 18px; margin: 0; }
.summary > div { min-width: 0; }
.summary dt { font-size: 12px; color: var(--muted); }
.summary dd { margin: 2px 0 0; overflow-wrap: anywhere; }
.two-col { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.two-col > .panel { margin-bottom: 0; }
.two-col + * { margin-top: 14px; }
.kv th { width: 34%; font-family: var(--mono); font-size: 12.5px; font-weight: 500; color: var(--muted); padding: 4px 8px; word-break: break-all; }
.kv td { padding: 4px 8px; }
details.headers { margin: 6px 0; }
details.headers summary { cursor: pointer; color: var(--muted); }

.timeline { list-style: none; margin: 0; padding: 0 0 0 14px; border-left: 2px solid var(--line); }
.tl { position: relative; display: flex; gap: 12px; flex-wrap: wrap; padding: 4px 0 4px 10px; }
.tl::before { content: ""; position: absolute; left: -21px; top: 10px; width: 10px; height: 10px; border-radius: 50%; background: var(--queued); border: 2px solid var(--panel); }
.tl-dispatched::before { background: var(--dispatched); } .tl-attempt-start::before { background: var(--running); }
.tl-attempt-end::before, .tl-finished::before, .tl-webhook::before { background: var(--succeeded); }
.tl-bad::before { background: var(--failed) !important; } .tl-webhook-next::before { background: var(--pending); }
.tl time { color: var(--muted); min-width: 96px; }
.tl-label { font-weight: 600; }
.tl-detail { color: var(--muted); overflow-wrap: anywhere; min-width: 0; }

.apps { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px; }
.app-head { display: flex; justify-content: space-between; align-items: baseline; }
.gauges { display: flex; gap: 24px; margin: 10px 0; }
.gauge { display: flex; flex-direction: column; }
.gauge-n { font-size: 26px; font-weight: 700; font-variant-numeric: tabular-nums; }
.outcomes { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin: 8px 0; }
.settings { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 10px 0 0; }
.settings dt { color: var(--muted); } .settings dd { margin: 0; }

.signin-page { min-height: 100vh; display: grid; place-items: center; padding: 16px; }
.signin { width: 100%; max-width: 380px; display: flex; flex-direction: column; gap: 12px; }
.signin label { display: flex; flex-direction: column; gap: 6px; font-weight: 600; }
.toasts { position: fixed; bottom: 16px; left: 50%; transform: translateX(-50%); display: flex; flex-direction: column; gap: 8px; z-index: 10; width: max-content; max-width: calc(100vw - 32px); }
.toast { background: var(--text); color: var(--bg); padding: 8px 14px; border-radius: 8px; box-shadow: 0 4px 16px rgba(0,0,0,.2); }
.toast-error { background: var(--failed); color: #fff; }

.search input { width: 190px; font-family: var(--mono); font-size: 12.5px; padding: 5px 8px; }
.segmented { display: inline-flex; border: 1px solid var(--line); border-radius: 6px; overflow: hidden; }
.segmented button { border: 0; border-radius: 0; border-right: 1px solid var(--line); }
.segmented button:last-child { border-right: 0; }
.segmented button[aria-pressed="true"] { background: var(--accent); color: #fff; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; margin-bottom: 14px; }
.kpi { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; display: flex; flex-direction: column; min-width: 0; }
.kpi-n { font-size: 26px; font-weight: 700; font-variant-numeric: tabular-nums; }
.kpi-l { color: var(--muted); font-size: 12.5px; }
.kpi-d { font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 14px; }
.charts > .panel { margin-bottom: 0; }
.charts + * { margin-top: 14px; }
.chart-panel h2 .hint { font-weight: 400; font-size: 12.5px; }
.chart { width: 100%; overflow: hidden; }
.chart .u-legend { font-size: 12.5px; text-align: left; margin: 4px 0 0; }
.chart .u-legend .u-series { padding: 1px 6px; }
.chart .u-legend th { font-weight: 500; }
.chart .u-legend .u-value { font-variant-numeric: tabular-nums; }
.figures summary { cursor: pointer; font-weight: 600; }
.figures .table-wrap { margin-top: 10px; overflow-x: auto; }
.figures-table th, .figures-table td { padding: 5px 10px; white-space: nowrap; }
details.more { margin: -4px 0 12px; }
details.more summary { cursor: pointer; color: var(--muted); font-size: 12.5px; margin-bottom: 6px; }
.more-filters { align-items: flex-end; }
.field { display: flex; flex-direction: column; gap: 2px; font-size: 12px; color: var(--muted); }
.field input { color: var(--text); }
.labels { display: inline-flex; flex-wrap: wrap; gap: 4px; }
.label { font-family: var(--mono); font-size: 12px; padding: 0 7px; border-radius: 999px; border: 1px solid var(--line); background: var(--bg); color: var(--text); }

.inline-form { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; }
.key-form { margin-bottom: 12px; }
.scopes { display: inline-flex; gap: 10px; }
.scopes label { display: inline-flex; align-items: center; gap: 4px; }
.limits-form { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px 16px; }
.limits-form .hint { font-size: 11.5px; }
.form-actions { grid-column: 1 / -1; display: flex; gap: 12px; align-items: center; }
.secret-once { border: 1px solid var(--pending); background: color-mix(in srgb, var(--pending) 10%, transparent); border-radius: 8px; padding: 10px 12px; margin-bottom: 12px; }
.secret-once p { margin: 0 0 8px; }
.secret-row { display: flex; gap: 8px; flex-wrap: wrap; }
.secret-row input { flex: 1 1 260px; min-width: 0; }
.badge-scope-read { --c: var(--running); } .badge-scope-invoke { --c: var(--dispatched); } .badge-scope-admin { --c: var(--timed_out); }
button.danger-text { color: var(--failed); border-color: color-mix(in srgb, var(--failed) 40%, transparent); }
.project.operator b { color: var(--timed_out); }

@keyframes pulse { 50% { opacity: .35; } }
@keyframes flash { from { background: color-mix(in srgb, var(--accent) 22%, transparent); } to { background: transparent; } }

@media (max-width: 900px) { .two-col, .charts { grid-template-columns: 1fr; } }
@media (max-width: 720px) {
  .top { padding: 8px 12px; gap: 8px; }
  .top .tabs a { padding: 6px 8px; }
  .top button { padding: 4px 8px; }
  .project { display: none; }
  .kv th { width: 42%; }
  #view { padding: 12px 10px 40px; }
  .apps { grid-template-columns: 1fr; }
  .search { order: 10; width: 100%; }
  .search input { width: 100%; }
  .kpis { grid-template-columns: 1fr 1fr; }
  .kpi-n { font-size: 22px; }
  .more-filters .field { flex: 1 1 140px; }
  .more-filters .field input { width: 100%; }
  .segmented button { padding: 6px 8px; }
  .project.operator { display: inline; }
  table.runs thead, table.deliveries thead { display: none; }
  table.runs, table.runs tbody, table.deliveries, table.deliveries tbody { display: block; }
  table.runs tr, table.deliveries tr { display: grid; grid-template-columns: 1fr 1fr; gap: 2px 12px; padding: 10px 12px; border-bottom: 1px solid var(--line); }
  table.runs td, table.deliveries td { border: 0; padding: 2px 0; min-width: 0; }
  table.runs td::before, table.deliveries td::before { content: attr(data-label); display: block; font-size: 11px; text-transform: uppercase; letter-spacing: .4px; color: var(--muted); }
  .actions { margin-left: 0; }
  .summary { grid-template-columns: 1fr 1fr; }
  .tl time { min-width: 0; }
}
`;
