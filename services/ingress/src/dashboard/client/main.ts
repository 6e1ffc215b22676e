import { ApiError, api, apiKey, clearApiKey, onUnauthorized, setApiKey } from "./api.js";
import { appsView } from "./apps-view.js";
import { fill, h } from "./dom.js";
import { runView } from "./run-view.js";
import { runsView } from "./runs-view.js";
import { BASE, type View, type ViewContext } from "./view.js";

/**
 * The dashboard's shell (issue 8): sign-in with an API key, the header, and a
 * history-API router over `/dashboard/runs`, `/dashboard/runs/<id>` and
 * `/dashboard/apps` (the ingress serves the page for every `/dashboard/...`).
 */

const root = document.getElementById("app")!;
let unmount: (() => void) | undefined;
let project: string | null = null;

function route(pathname: string): { view: View; nav: "runs" | "apps" | null } {
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length).replace(/\/+$/, "") : pathname;
  if (rest === "" || rest === "/runs") return { view: runsView, nav: "runs" };
  if (rest === "/apps") return { view: appsView, nav: "apps" };
  const run = /^\/runs\/([0-9a-fA-F-]{36})$/.exec(rest);
  if (run) return { view: (el, ctx) => runView(el, ctx, run[1]!.toLowerCase()), nav: "runs" };
  return {
    view: (el) => {
      fill(el, h("section", { class: "panel" }, h("h1", null, "Not found"), h("p", null, h("a", { href: `${BASE}/runs` }, "Back to runs"))));
      return () => undefined;
    },
    nav: null,
  };
}

function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

function toast(message: string, kind: "ok" | "error" = "ok"): void {
  const box = document.querySelector(".toasts");
  if (!box) return;
  const t = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  box.appendChild(t);
  setTimeout(() => t.remove(), 5000);
}

function signOut(): void {
  clearApiKey();
  project = null;
  render();
}

function render(): void {
  unmount?.();
  unmount = undefined;
  if (!apiKey() || !project) {
    renderSignIn();
    return;
  }
  const { view, nav } = route(location.pathname);
  const live = h("span", { class: "live", "data-live": "idle", title: "Live updates" }, "Live");
  const link = (name: "runs" | "apps", text: string) =>
    h("a", { href: `${BASE}/${name}`, class: nav === name ? "active" : null, "aria-current": nav === name ? "page" : null }, text);
  const main = h("main", { id: "view" });
  fill(
    root,
    h(
      "header",
      { class: "top" },
      h("a", { href: `${BASE}/runs`, class: "brand" }, "Longhaul"),
      h("nav", { class: "tabs" }, link("runs", "Runs"), link("apps", "Apps")),
      h("span", { class: "spacer" }),
      live,
      h("span", { class: "project", title: "The project of this API key" }, "project ", h("b", null, project)),
      h("button", { type: "button", class: "ghost", onclick: signOut }, "Sign out"),
    ),
    main,
    h("div", { class: "toasts", "aria-live": "polite" }),
  );
  const ctx: ViewContext = {
    project,
    navigate,
    toast,
    setLive: (on) => live.setAttribute("data-live", on === null ? "idle" : on ? "on" : "off"),
  };
  unmount = view(main, ctx);
}

function renderSignIn(message?: string): void {
  const input = h("input", { type: "password", name: "key", autocomplete: "off", required: true, placeholder: "lh_...", "aria-label": "API key" });
  const error = h("p", { class: "error", role: "alert", hidden: !message }, message);
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "signin panel" },
    h("h1", null, "Longhaul"),
    h("p", { class: "muted" }, "Sign in with a project API key. It is kept in this tab only."),
    h("label", null, "API key", input),
    button,
    error,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    button.disabled = true;
    error.hidden = true;
    api<{ project: string }>("/v1/project", { key })
      .then((res) => {
        setApiKey(key);
        project = res.project;
        render();
      })
      .catch((err: unknown) => {
        error.textContent = err instanceof ApiError && err.status === 401 ? "This key is not valid." : String((err as Error).message);
        error.hidden = false;
        button.disabled = false;
      });
  });
  fill(root, h("main", { class: "signin-page" }, form));
  input.focus();
}

/** Links inside the dashboard navigate without a reload. */
document.addEventListener("click", (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = (ev.target as Element | null)?.closest?.("a");
  if (!a || a.target || a.origin !== location.origin || !a.pathname.startsWith(BASE)) return;
  ev.preventDefault();
  navigate(a.pathname + a.search);
});
window.addEventListener("popstate", render);
onUnauthorized(signOut);

async function boot(): Promise<void> {
  if (apiKey()) {
    try {
      project = (await api<{ project: string }>("/v1/project")).project;
    } catch (err) {
      // A 401 has signed out already; anything else: sign in again, told why.
      renderSignIn(err instanceof ApiError && err.status === 401 ? "This key is no longer valid." : (err as Error).message);
      return;
    }
  }
  render();
}

void boot();
