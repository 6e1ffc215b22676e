import { ApiError, api, apiKey, clearApiKey, onUnauthorized, setApiKey } from "./api.js";
import { appsView } from "./apps-view.js";
import { auditView, projectView, projectsView } from "./operator-view.js";
import { overviewView } from "./overview-view.js";
import { searchBox } from "./search.js";
import { fill, h } from "./dom.js";
import { runView } from "./run-view.js";
import { runsView } from "./runs-view.js";
import { BASE, type View, type ViewContext } from "./view.js";

/**
 * The dashboard's shell: sign-in, the header, and a history-API router (the
 * ingress serves the page for every `/dashboard/...`).
 *
 * A project key opens the project's views: `/dashboard` (the overview),
 * `/dashboard/runs`, `/dashboard/runs/<id>`, `/dashboard/apps`, with the run
 * search box in the header. The operator key (the dashboard asks
 * `GET /v1/admin/whoami`) opens the operator's views instead:
 * `/dashboard/projects`, `/dashboard/projects/<name>` and
 * `/dashboard/audit`.
 */

const root = document.getElementById("app")!;
let unmount: (() => void) | undefined;

/** Who is signed in: a project's key, or the operator's. */
type Session = { kind: "project"; project: string } | { kind: "operator"; fingerprint: string };
let session: Session | null = null;

type Nav = "overview" | "runs" | "apps" | "projects" | "audit";

const notFound: View = (el) => {
  fill(el, h("section", { class: "panel" }, h("h1", null, "Not found"), h("p", null, h("a", { href: BASE }, "Back"))));
  return () => undefined;
};

function route(pathname: string, s: Session): { view: View; nav: Nav | null } {
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length).replace(/\/+$/, "") : pathname;
  if (s.kind === "operator") {
    if (rest === "" || rest === "/projects") return { view: projectsView, nav: "projects" };
    if (rest === "/audit") return { view: auditView, nav: "audit" };
    const p = /^\/projects\/([a-z][a-z0-9-]{0,62})$/.exec(rest);
    if (p) return { view: (el, ctx) => projectView(el, ctx, p[1]!), nav: "projects" };
    return { view: notFound, nav: null };
  }
  if (rest === "" || rest === "/overview") return { view: overviewView, nav: "overview" };
  if (rest === "/runs") return { view: runsView, nav: "runs" };
  if (rest === "/apps") return { view: appsView, nav: "apps" };
  const run = /^\/runs\/([0-9a-fA-F-]{36})$/.exec(rest);
  if (run) return { view: (el, ctx) => runView(el, ctx, run[1]!.toLowerCase()), nav: "runs" };
  return { view: notFound, nav: null };
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
  session = null;
  render();
}

function render(): void {
  unmount?.();
  unmount = undefined;
  if (!apiKey() || !session) {
    renderSignIn();
    return;
  }
  const s = session;
  const { view, nav } = route(location.pathname, s);
  const live = h("span", { class: "live", "data-live": "idle", title: "Live updates" }, "Live");
  const link = (name: Nav, text: string) =>
    h("a", { href: `${BASE}/${name}`, class: nav === name ? "active" : null, "aria-current": nav === name ? "page" : null }, text);
  const main = h("main", { id: "view" });
  const tabs =
    s.kind === "operator"
      ? [link("projects", "Projects"), link("audit", "Audit log")]
      : [link("overview", "Overview"), link("runs", "Runs"), link("apps", "Apps")];
  const who =
    s.kind === "operator"
      ? h("span", { class: "project operator", title: `The operator key (fingerprint ${s.fingerprint})` }, h("b", null, "operator"))
      : h("span", { class: "project", title: "The project of this API key" }, "project ", h("b", null, s.project));
  fill(
    root,
    h(
      "header",
      { class: "top" },
      h("a", { href: `${BASE}/${s.kind === "operator" ? "projects" : "overview"}`, class: "brand" }, "Longhaul"),
      h("nav", { class: "tabs" }, tabs),
      h("span", { class: "spacer" }),
      s.kind === "project" ? searchBox({ navigate, toast }) : null,
      live,
      who,
      h("button", { type: "button", class: "ghost", onclick: signOut }, "Sign out"),
    ),
    main,
    h("div", { class: "toasts", "aria-live": "polite" }),
  );
  const ctx: ViewContext = {
    project: s.kind === "project" ? s.project : "",
    navigate,
    toast,
    setLive: (on) => live.setAttribute("data-live", on === null ? "idle" : on ? "on" : "off"),
  };
  unmount = view(main, ctx);
}

/**
 * The session a key opens: the operator's when `GET /v1/admin/whoami`
 * answers it, else its project's (`GET /v1/project`); an ApiError (401) when
 * it is neither.
 */
async function sessionOf(key?: string): Promise<Session> {
  const opts = key === undefined ? {} : { key };
  try {
    const who = await api<{ role: string; key_fingerprint?: string }>("/v1/admin/whoami", { ...opts, quiet: true });
    return { kind: "operator", fingerprint: who.key_fingerprint ?? "" };
  } catch (err) {
    // Not the operator key (401/403), or an ingress without the admin API (404): a project key, maybe.
    if (!(err instanceof ApiError) || err.status === 0 || err.status >= 500) throw err;
  }
  const res = await api<{ project: string }>("/v1/project", opts);
  return { kind: "project", project: res.project };
}

function renderSignIn(message?: string): void {
  const input = h("input", { type: "password", name: "key", autocomplete: "off", required: true, placeholder: "lh_...", "aria-label": "API key" });
  const error = h("p", { class: "error", role: "alert", hidden: !message }, message);
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "signin panel" },
    h("h1", null, "Longhaul"),
    h("p", { class: "muted" }, "Sign in with a project API key, or the operator key. It is kept in this tab only."),
    h("label", null, "API key", input),
    button,
    error,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    button.disabled = true;
    error.hidden = true;
    sessionOf(key)
      .then((s) => {
        setApiKey(key);
        session = s;
        // The landing page of the session's kind.
        if (location.pathname === BASE || location.pathname === `${BASE}/`) history.replaceState(null, "", BASE);
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
      session = await sessionOf();
    } catch (err) {
      // A 401 has signed out already; anything else: sign in again, told why.
      renderSignIn(err instanceof ApiError && err.status === 401 ? "This key is no longer valid." : (err as Error).message);
      return;
    }
  }
  render();
}

void boot();
