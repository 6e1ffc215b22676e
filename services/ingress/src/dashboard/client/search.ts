import { ApiError, api, query } from "./api.js";
import { h } from "./dom.js";
import type { RunPage } from "./types.js";
import { BASE } from "./view.js";

/**
 * The header's search box: paste a run id from a log or a ticket, whole or
 * its first 8 characters or more, and the run opens. A prefix that several
 * runs share is never guessed: the runs table opens listing them all.
 */

/** At least this many characters of an id (`GET /v1/runs?id_prefix=` refuses fewer). */
export const MIN_PREFIX = 8;

const FULL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What a search for `raw` should do before asking the API: open a whole id, refuse a bad one, or look the prefix up. */
export function searchTarget(raw: string): { kind: "open"; id: string } | { kind: "lookup"; prefix: string } | { kind: "invalid"; message: string } {
  const text = raw.trim();
  if (FULL_ID.test(text)) return { kind: "open", id: text.toLowerCase() };
  const digits = text.replace(/-/g, "");
  if (!/^[0-9a-f]*$/i.test(digits)) return { kind: "invalid", message: "A run id has only hex digits and dashes." };
  if (digits.length < MIN_PREFIX) return { kind: "invalid", message: `Type at least ${MIN_PREFIX} characters of the run id.` };
  return { kind: "lookup", prefix: text.toLowerCase() };
}

export function searchBox(shell: { navigate(path: string): void; toast(message: string, kind?: "ok" | "error"): void }): HTMLElement {
  const input = h("input", {
    type: "search",
    name: "run",
    placeholder: "Run id…",
    autocomplete: "off",
    spellcheck: "false",
    "aria-label": "Open a run by its id or its first 8 characters",
  });
  const form = h("form", { class: "search", role: "search" }, input);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const target = searchTarget(input.value);
    if (target.kind === "invalid") {
      shell.toast(target.message, "error");
      return;
    }
    if (target.kind === "open") {
      input.value = "";
      shell.navigate(`${BASE}/runs/${target.id}`);
      return;
    }
    input.disabled = true;
    api<RunPage>(`/v1/runs${query({ id_prefix: target.prefix, limit: "2" })}`)
      .then((page) => {
        if (page.runs.length === 0) {
          shell.toast(`No run of this project starts with ${target.prefix}.`, "error");
          return;
        }
        input.value = "";
        if (page.runs.length === 1) shell.navigate(`${BASE}/runs/${page.runs[0]!.run_id}`);
        else shell.navigate(`${BASE}/runs${query({ id_prefix: target.prefix })}`);
      })
      .catch((err: unknown) => {
        shell.toast(err instanceof ApiError ? err.message : String(err), "error");
      })
      .finally(() => {
        input.disabled = false;
      });
  });
  return form;
}
