import { ApiError, api, query } from "./api.js";
import { badge, fill, h } from "./dom.js";
import { formatTime } from "./format.js";
import type { AdminKey, AuditEntry, CreatedKey, Project, ProjectLimits } from "./types.js";
import { BASE, type ViewContext } from "./view.js";

/**
 * The operator's view (signed in with the operator key): every project with
 * its limits and today's usage, a project's keys (create: the secret shown
 * once, with a copy button; revoke) and its limits (edited in place), and
 * the audit log of admin actions. All of it is the admin API of
 * docs/HTTP-API.md (`/v1/admin/...`), which checks everything again.
 */

const REFRESH_MS = 10_000;

const LIMITS: { key: keyof ProjectLimits; label: string; hint: string }[] = [
  { key: "submits_per_second", label: "Submits per second", hint: "async submits and retries, refilled continuously" },
  { key: "burst", label: "Burst", hint: "submits at once above the rate (0: the rate)" },
  { key: "max_in_flight", label: "Max in flight", hint: "runs dispatched or running; more wait queued" },
  { key: "max_queued", label: "Max queued", hint: "runs waiting; a submit past it is refused" },
  { key: "max_watch_streams", label: "Max watch streams", hint: "SSE, WatchRun(s) and long polls open at once" },
];
const SCOPES = ["read", "invoke", "admin"] as const;

const limitText = (n: number) => (n === 0 ? "unlimited" : String(n));

/** A project's limits in one line: `50/s (burst 100), 200 in flight, unlimited queued, 100 streams`. */
export function limitsSummary(l: ProjectLimits): string {
  const rate = l.submits_per_second === 0 ? "no rate limit" : `${l.submits_per_second}/s (burst ${l.burst || l.submits_per_second})`;
  return `${rate}, ${limitText(l.max_in_flight)} in flight, ${limitText(l.max_queued)} queued, ${limitText(l.max_watch_streams)} streams`;
}

function errorBox(): HTMLParagraphElement {
  return h("p", { class: "error", role: "alert", hidden: true });
}

function showError(box: HTMLElement, err: unknown): void {
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
}

/** `/dashboard/projects`: every project, its usage today and its limits; a form to make one. */
export function projectsView(root: HTMLElement, ctx: ViewContext): () => void {
  const ac = new AbortController();
  const tbody = h("tbody");
  const errors = errorBox();
  const name = h("input", { name: "name", required: true, pattern: "[a-z][a-z0-9-]{0,62}", placeholder: "acme", "aria-label": "New project name" });
  const create = h("form", { class: "inline-form" }, name, h("button", { type: "submit" }, "Create project"));
  fill(
    root,
    h("div", { class: "toolbar" }, h("h1", null, "Projects"), create),
    errors,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "runs projects" },
        h("thead", null, h("tr", null, ["Project", "Runs today", "In flight", "Queued", "429s today", "Limits", "Created"].map((c) => h("th", { scope: "col" }, c)))),
        tbody,
      ),
    ),
  );

  function rowOf(p: Project): HTMLTableRowElement {
    const l = p.limits;
    const td = (label: string, ...c: (Node | string)[]) => h("td", { "data-label": label }, ...c);
    return h(
      "tr",
      { "data-project": p.name },
      td("Project", h("a", { href: `${BASE}/projects/${p.name}` }, p.name)),
      h("td", { "data-label": "Runs today", class: "num" }, String(p.usage.runs_today)),
      h("td", { "data-label": "In flight", class: "num", "data-usage": "in_flight" }, `${p.usage.in_flight}${l.max_in_flight ? ` / ${l.max_in_flight}` : ""}`),
      h("td", { "data-label": "Queued", class: "num" }, `${p.usage.queued}${l.max_queued ? ` / ${l.max_queued}` : ""}`),
      h("td", { "data-label": "429s today", class: "num" }, String(p.usage.throttled_today)),
      td("Limits", h("span", { class: "muted" }, limitsSummary(l))),
      td("Created", formatTime(p.created_at)),
    );
  }

  async function load(): Promise<void> {
    try {
      const { projects } = await api<{ projects: Project[] }>("/v1/admin/projects", { signal: ac.signal });
      errors.hidden = true;
      fill(tbody, projects.map(rowOf));
      if (projects.length === 0) fill(tbody, h("tr", null, h("td", { colspan: 7, class: "muted" }, "No projects yet.")));
    } catch (err) {
      if (!ac.signal.aborted) showError(errors, err);
    }
  }

  create.addEventListener("submit", (ev) => {
    ev.preventDefault();
    api<Project>("/v1/admin/projects", { method: "POST", body: { name: name.value.trim() } })
      .then((p) => {
        ctx.toast(`Project ${p.name} created.`);
        ctx.navigate(`${BASE}/projects/${p.name}`);
      })
      .catch((err: unknown) => showError(errors, err));
  });

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

/** `/dashboard/projects/<name>`: usage, limits (editable), keys (create, revoke). */
export function projectView(root: HTMLElement, ctx: ViewContext, name: string): () => void {
  const ac = new AbortController();
  const errors = errorBox();
  const usage = h("div", { class: "kpis" });
  const inputs = new Map<keyof ProjectLimits, HTMLInputElement>();
  const limitsForm = h(
    "form",
    { class: "limits-form", "aria-label": "Limits" },
    LIMITS.map((l) => {
      const input = h("input", { type: "number", min: 0, step: 1, name: l.key, required: true, inputmode: "numeric" });
      inputs.set(l.key, input);
      return h("label", { class: "field" }, h("span", null, l.label), input, h("span", { class: "muted hint" }, l.hint));
    }),
    h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Save limits"), h("span", { class: "muted" }, "0 is unlimited.")),
  );
  const keysBody = h("tbody");
  const keyName = h("input", { name: "key_name", required: true, placeholder: "ci", "aria-label": "Key name" });
  const scopeBoxes = SCOPES.map((s) => h("input", { type: "checkbox", name: "scope", value: s, checked: s !== "admin" }));
  const keyForm = h(
    "form",
    { class: "inline-form key-form", "aria-label": "New key" },
    keyName,
    h("span", { class: "scopes" }, scopeBoxes.map((box) => h("label", null, box, ` ${box.value}`))),
    h("button", { type: "submit" }, "Create key"),
  );
  const secretSlot = h("div", { class: "secret-once", hidden: true });
  const deleteBtn = h("button", { type: "button", class: "danger" }, "Delete project");

  fill(
    root,
    h("p", { class: "crumbs" }, h("a", { href: `${BASE}/projects` }, "← Projects")),
    h("div", { class: "run-head" }, h("h1", { class: "run-title" }, "Project ", h("span", { class: "mono" }, name)), h("div", { class: "actions" }, deleteBtn)),
    errors,
    usage,
    h("section", { class: "panel" }, h("h2", null, "Limits"), limitsForm),
    h(
      "section",
      { class: "panel" },
      h("h2", null, "Keys"),
      keyForm,
      secretSlot,
      h(
        "div",
        { class: "table-wrap" },
        h("table", { class: "runs keys" }, h("thead", null, h("tr", null, ["Name", "Scopes", "Prefix", "Created", "Last used", ""].map((c) => h("th", { scope: "col" }, c)))), keysBody),
      ),
    ),
    h("p", null, h("a", { href: `${BASE}/audit${query({ project: name })}` }, "Audit log of this project →")),
  );

  let limitsLoaded = false;
  function renderProject(p: Project): void {
    fill(
      usage,
      [
        ["runs today", p.usage.runs_today, "runs_today"],
        ["in flight now", p.usage.in_flight, "in_flight"],
        ["queued now", p.usage.queued, "queued"],
        ["429s today", p.usage.throttled_today, "throttled_today"],
      ].map(([label, n, key]) => h("div", { class: "kpi", "data-kpi": String(key) }, h("span", { class: "kpi-n" }, String(n)), h("span", { class: "kpi-l" }, String(label)))),
    );
    // Never overwrite what the operator is typing: the form is filled once, and after a save.
    if (!limitsLoaded) {
      for (const l of LIMITS) inputs.get(l.key)!.value = String(p.limits[l.key]);
      limitsLoaded = true;
    }
  }

  function keyRow(k: AdminKey): HTMLTableRowElement {
    const revoke = h("button", { type: "button", class: "ghost danger-text", "data-action": "revoke" }, "Revoke");
    revoke.addEventListener("click", () => {
      if (!confirm(`Revoke the key ${k.name} (${k.prefix}…)? Every call made with it is refused from now on.`)) return;
      revoke.disabled = true;
      api<void>(`/v1/admin/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" })
        .then(() => {
          ctx.toast(`Key ${k.name} revoked.`);
          void loadKeys();
        })
        .catch((err: unknown) => {
          revoke.disabled = false;
          showError(errors, err);
        });
    });
    return h(
      "tr",
      { "data-key-id": k.id, "data-key-name": k.name },
      h("td", { "data-label": "Name" }, k.name),
      h("td", { "data-label": "Scopes" }, k.scopes.map((s) => [badge(`scope-${s}`, s), " "])),
      h("td", { "data-label": "Prefix", class: "mono" }, `${k.prefix}…`),
      h("td", { "data-label": "Created" }, formatTime(k.created_at)),
      h("td", { "data-label": "Last used" }, k.last_used_at ? formatTime(k.last_used_at) : h("span", { class: "muted" }, "never")),
      h("td", { "data-label": "" }, revoke),
    );
  }

  async function loadProject(): Promise<void> {
    try {
      renderProject(await api<Project>(`/v1/admin/projects/${name}`, { signal: ac.signal }));
      errors.hidden = true;
    } catch (err) {
      if (ac.signal.aborted) return;
      if (err instanceof ApiError && err.status === 404) {
        fill(root, h("section", { class: "panel" }, h("h1", null, "No such project"), h("p", null, h("a", { href: `${BASE}/projects` }, "Back to projects"))));
        return;
      }
      showError(errors, err);
    }
  }

  async function loadKeys(): Promise<void> {
    try {
      const { keys } = await api<{ keys: AdminKey[] }>(`/v1/admin/projects/${name}/keys`, { signal: ac.signal });
      fill(keysBody, keys.length ? keys.map(keyRow) : h("tr", null, h("td", { colspan: 6, class: "muted" }, "No keys.")));
    } catch (err) {
      if (!ac.signal.aborted) showError(errors, err);
    }
  }

  limitsForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const limits = Object.fromEntries(LIMITS.map((l) => [l.key, Number(inputs.get(l.key)!.value)]));
    api<Project>(`/v1/admin/projects/${name}`, { method: "PATCH", body: { limits } })
      .then((p) => {
        limitsLoaded = false;
        renderProject(p);
        ctx.toast("Limits saved.");
      })
      .catch((err: unknown) => showError(errors, err));
  });

  keyForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const scopes = scopeBoxes.filter((b) => b.checked).map((b) => b.value);
    api<CreatedKey>(`/v1/admin/projects/${name}/keys`, { method: "POST", body: { name: keyName.value.trim(), scopes } })
      .then((k) => {
        keyName.value = "";
        showSecret(k);
        void loadKeys();
      })
      .catch((err: unknown) => showError(errors, err));
  });

  /** The new key's secret, shown this once: the API never gives it again. */
  function showSecret(k: CreatedKey): void {
    const value = h("input", { type: "text", readonly: true, class: "mono", value: k.key, "aria-label": `Secret of the key ${k.name}`, "data-secret": "" });
    const copy = h("button", { type: "button" }, "Copy");
    const done = h("button", { type: "button", class: "ghost" }, "Done");
    copy.addEventListener("click", () => {
      navigator.clipboard
        .writeText(k.key)
        .then(() => ctx.toast("Key copied."))
        .catch(() => {
          // No clipboard access (an insecure origin, a denied permission): select it for Ctrl+C.
          value.select();
          ctx.toast("Press Ctrl+C (⌘C) to copy the selected key.", "error");
        });
    });
    done.addEventListener("click", () => {
      secretSlot.hidden = true;
      secretSlot.replaceChildren();
    });
    fill(
      secretSlot,
      h("p", null, h("b", null, `Key ${k.name} created.`), " Copy it now: it is not shown again."),
      h("div", { class: "secret-row" }, value, copy, done),
    );
    secretSlot.hidden = false;
    value.select();
  }

  deleteBtn.addEventListener("click", () => {
    if (!confirm(`Delete the project ${name}? Its keys are revoked and it takes no new runs; runs in flight finish.`)) return;
    api<void>(`/v1/admin/projects/${name}`, { method: "DELETE" })
      .then(() => {
        ctx.toast(`Project ${name} deleted.`);
        ctx.navigate(`${BASE}/projects`);
      })
      .catch((err: unknown) => showError(errors, err));
  });

  void loadProject();
  void loadKeys();
  const timer = setInterval(() => {
    if (document.visibilityState === "visible") void loadProject();
  }, REFRESH_MS);
  ctx.setLive(null);
  return () => {
    ac.abort();
    clearInterval(timer);
  };
}

/** `/dashboard/audit[?project=]`: admin actions, newest first, 50 a page. */
export function auditView(root: HTMLElement, ctx: ViewContext): () => void {
  const ac = new AbortController();
  const params = new URLSearchParams(location.search);
  let project = params.get("project") ?? "";
  let cursors = [""];
  let next: string | null = null;
  const errors = errorBox();
  const tbody = h("tbody");
  const filter = h("select", { name: "project", "aria-label": "Project" }, h("option", { value: "" }, "All projects"));
  const newer = h("button", { type: "button", class: "ghost" }, "← Newer");
  const older = h("button", { type: "button", class: "ghost" }, "Older →");
  fill(
    root,
    h("div", { class: "toolbar" }, h("h1", null, "Audit log"), h("div", { class: "filters" }, filter)),
    errors,
    h(
      "div",
      { class: "table-wrap" },
      h("table", { class: "runs audit" }, h("thead", null, h("tr", null, ["When", "Who", "Action", "Project", "Target", "Details"].map((c) => h("th", { scope: "col" }, c)))), tbody),
    ),
    h("nav", { class: "pager", "aria-label": "Pages" }, newer, older),
  );

  async function load(): Promise<void> {
    try {
      const page = await api<{ entries: AuditEntry[]; next_cursor: string | null }>(
        `/v1/admin/audit${query({ project, limit: "50", cursor: cursors.at(-1) ?? "" })}`,
        { signal: ac.signal },
      );
      errors.hidden = true;
      next = page.next_cursor;
      fill(
        tbody,
        page.entries.length === 0
          ? h("tr", null, h("td", { colspan: 6, class: "muted" }, "Nothing recorded."))
          : page.entries.map((e) =>
              h(
                "tr",
                { "data-action": e.action },
                h("td", { "data-label": "When" }, h("time", { datetime: e.at ?? "", title: e.at ?? "" }, formatTime(e.at))),
                h("td", { "data-label": "Who", class: "mono" }, e.actor),
                h("td", { "data-label": "Action", class: "mono" }, e.action),
                h("td", { "data-label": "Project" }, e.project ? h("a", { href: `${BASE}/projects/${e.project}` }, e.project) : "—"),
                h("td", { "data-label": "Target", class: "mono wrap" }, e.target ?? "—"),
                h("td", { "data-label": "Details", class: "mono wrap" }, Object.keys(e.detail ?? {}).length ? JSON.stringify(e.detail) : "—"),
              ),
            ),
      );
      newer.disabled = cursors.length === 1;
      older.disabled = !next;
    } catch (err) {
      if (!ac.signal.aborted) showError(errors, err);
    }
  }

  filter.addEventListener("change", () => {
    project = filter.value;
    cursors = [""];
    history.replaceState(null, "", `${BASE}/audit${query({ project })}`);
    void load();
  });
  newer.addEventListener("click", () => {
    cursors.pop();
    void load();
  });
  older.addEventListener("click", () => {
    if (!next) return;
    cursors.push(next);
    void load();
  });
  void api<{ projects: Project[] }>("/v1/admin/projects", { signal: ac.signal })
    .then(({ projects }) => {
      const names = new Set(projects.map((p) => p.name));
      if (project) names.add(project);
      for (const n of [...names].sort()) filter.appendChild(h("option", { value: n }, n));
      filter.value = project;
    })
    .catch((err: unknown) => {
      if (!ac.signal.aborted) showError(errors, err);
    });
  void load();
  ctx.setLive(null);
  return () => ac.abort();
}
