import { badge, h } from "./dom.js";
import { formatBytes, formatDuration, formatPreciseTime, formatTime, prettyBody, timeline } from "./format.js";
import type { BodyPreview, Delivery, Header, Run } from "./types.js";

/** The parts of the run page that only draw: timeline, headers, bodies, deliveries. */

/** The run's timeline as a list (format.ts puts the steps in order). */
export function timelineBlock(run: Run, delivery: Delivery | null): HTMLElement {
  return h(
    "ol",
    { class: "timeline" },
    timeline(run, delivery).map((e) =>
      h(
        "li",
        { class: `tl tl-${e.kind}${e.bad ? " tl-bad" : ""}`, "data-kind": e.kind },
        h("time", { datetime: e.at, class: "mono" }, formatPreciseTime(e.at)),
        h("span", { class: "tl-label" }, e.label),
        e.detail ? h("span", { class: "tl-detail" }, e.detail) : null,
      ),
    ),
  );
}

/** Headers, as the API gives them (secrets already masked by the ingress). */
export function headersTable(headers: readonly Header[]): HTMLElement {
  if (headers.length === 0) return h("p", { class: "muted" }, "No headers.");
  return h(
    "details",
    { class: "headers", open: headers.length <= 8 },
    h("summary", null, `Headers (${headers.length})`),
    h("table", { class: "kv" }, h("tbody", null, headers.map((x) => h("tr", null, h("th", { scope: "row" }, x.name), h("td", { class: "mono wrap" }, x.value))))),
  );
}

/** A body preview: text (JSON pretty-printed) or, for bytes, their base64. */
export function bodyBlock(p: BodyPreview, contentType: string | null, emptyText: string): HTMLElement {
  if (p.body === null || p.body_size === null || p.body_size === 0) return h("p", { class: "muted" }, emptyText);
  const size = formatBytes(p.body_size);
  const note = p.body_preview_truncated ? `${size}, first part shown` : size;
  if (p.body_encoding === "base64") {
    return h("div", { class: "body" }, h("p", { class: "muted" }, `Binary body (${note}), as base64:`), h("pre", { class: "code" }, p.body));
  }
  return h("div", { class: "body" }, h("p", { class: "muted" }, `Body (${note})`), h("pre", { class: "code", "data-testid": "body" }, prettyBody(p.body, contentType)));
}

/** The webhook delivery of a run and each of its attempts. */
export function deliveriesBlock(d: Delivery | null): HTMLElement {
  if (!d) return h("p", { class: "muted" }, "No delivery yet: the webhook is sent once the run finishes.");
  return h(
    "div",
    null,
    h(
      "p",
      null,
      badge(`wh-${d.state}`, d.state),
      ` ${d.attempts_made} attempt${d.attempts_made === 1 ? "" : "s"} to `,
      h("span", { class: "mono wrap" }, d.url),
      d.next_attempt_at && d.state === "pending" ? ` · next at ${formatTime(d.next_attempt_at)}` : "",
    ),
    d.attempts.length === 0
      ? null
      : h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "deliveries" },
            h("thead", null, h("tr", null, ["#", "Started", "Outcome", "Took", "Response"].map((c) => h("th", { scope: "col" }, c)))),
            h(
              "tbody",
              null,
              d.attempts.map((a) => {
                const good = a.status_code !== null && a.status_code >= 200 && a.status_code < 300;
                return h(
                  "tr",
                  null,
                  h("td", { "data-label": "#" }, String(a.attempt)),
                  h("td", { "data-label": "Started" }, formatTime(a.started_at)),
                  h("td", { "data-label": "Outcome" }, badge(good ? "succeeded" : "failed", a.status_code !== null ? `HTTP ${a.status_code}` : "error"), a.error ? ` ${a.error}` : ""),
                  h("td", { "data-label": "Took", class: "num" }, formatDuration(a.duration_ms)),
                  h("td", { "data-label": "Response", class: "mono wrap" }, a.response_excerpt ?? "—"),
                );
              }),
            ),
          ),
        ),
  );
}
