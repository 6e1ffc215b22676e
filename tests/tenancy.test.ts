// Projects, keys and scopes end to end through the real mesh (DESIGN.md
// "Projects, keys and limits"): the operator's admin API over HTTP and gRPC,
// scoped keys, a project admin's own keys, bad input answered 400/404/409
// with nothing changed, two tenants who cannot see or touch each other's
// runs and apps (404, not 403), and a revoked key refused everywhere, an open
// event stream included.
import { Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callUnary, createClient } from "@longhaul/shared/grpc";
import { adminPb, runsPb } from "@longhaul/shared/proto";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

/** An operator key being rotated out: accepted beside the current one while it is set. */
const PREVIOUS_ADMIN_KEY = "lh_admin_previous_0123456789abcdefghijklmnop";

let mesh: TestMesh;
let app: Peer;
let operator: ReturnType<typeof gateway>;
/** Released to let the app answer the calls it holds. */
let release: () => void = () => undefined;
let held = new Promise<void>((r) => (release = r));

beforeAll(async () => {
  [mesh, app] = await Promise.all([startTestMesh({ env: { LONGHAUL_ADMIN_KEY_PREVIOUS: PREVIOUS_ADMIN_KEY } }), startPeer()]);
  operator = gateway(mesh.ingressUrl, mesh.adminKey);
  app.handle(async (req, res) => {
    if (req.url.startsWith("/hold")) await held;
    if (req.url.startsWith("/html")) {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<script>document.title='pwned'</script>");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(`answer to ${req.url}`);
  });
});

afterAll(async () => {
  release();
  await mesh?.cleanup();
  await app?.close();
});

/** A new project and a key of it with the given scopes. */
async function projectWithKey(name: string, scopes = ["read", "invoke", "admin"]) {
  const p = await operator.call("POST", "/v1/admin/projects", { name });
  expect(p.status, p.text).toBe(201);
  const k = await operator.call("POST", `/v1/admin/projects/${name}/keys`, { name: "all", scopes });
  expect(k.status, k.text).toBe(201);
  return { key: k.json.key as string, id: k.json.id as string, api: gateway(mesh.ingressUrl, k.json.key as string) };
}

async function submit(api: ReturnType<typeof gateway>, project: string, appName: string, path = "/x"): Promise<string> {
  const r = await api.call("POST", `/${project}/${appName}${path}?async=true`, "{}");
  expect(r.status, r.text).toBe(202);
  return r.json.run_id as string;
}

describe("the admin API", () => {
  it("takes the previous operator key during a rotation, told apart by its fingerprint", async () => {
    const current = (await operator.call("GET", "/v1/admin/whoami")).json.key_fingerprint;
    const previous = await gateway(mesh.ingressUrl, PREVIOUS_ADMIN_KEY).call("GET", "/v1/admin/whoami");
    expect(previous.status).toBe(200);
    expect(previous.json.key_fingerprint).toMatch(/^[0-9a-f]{12}$/);
    expect(previous.json.key_fingerprint).not.toBe(current);
    expect((await gateway(mesh.ingressUrl, `${PREVIOUS_ADMIN_KEY}x`).call("GET", "/v1/admin/whoami")).status).toBe(401);
  });

  it("answers the operator key only, and creates, lists, reads, limits and deletes projects", async () => {
    const who = await operator.call("GET", "/v1/admin/whoami");
    expect(who.status).toBe(200);
    expect(who.json).toMatchObject({ role: "operator", key_fingerprint: expect.stringMatching(/^[0-9a-f]{12}$/) });
    // A project key, no key, a wrong key: 401, never the admin API.
    for (const key of [mesh.apiKey, "", "x".repeat(40)]) {
      const r = await gateway(mesh.ingressUrl, key).call("GET", "/v1/admin/projects");
      expect(r.status, key).toBe(401);
      expect(r.json.error.code).toBe("unauthenticated");
    }

    const created = await operator.call("POST", "/v1/admin/projects", { name: "acme" });
    expect(created.status).toBe(201);
    expect(created.json).toEqual({
      name: "acme",
      created_at: expect.any(String),
      limits: { submits_per_second: 0, burst: 0, max_in_flight: 0, max_queued: 0, max_watch_streams: 0 },
      usage: { runs_today: 0, in_flight: 0, queued: 0, throttled_today: 0 },
    });
    const listed = await operator.call("GET", "/v1/admin/projects");
    expect(listed.json.projects.map((p: { name: string }) => p.name)).toEqual(expect.arrayContaining(["acme", "dev"]));
    expect((await operator.call("GET", "/v1/admin/projects/acme")).json.name).toBe("acme");

    const patched = await operator.call("PATCH", "/v1/admin/projects/acme", { limits: { max_in_flight: 200, burst: 100 } });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.json.limits).toEqual({ submits_per_second: 0, burst: 100, max_in_flight: 200, max_queued: 0, max_watch_streams: 0 });
    // A field left out is unchanged.
    const again = await operator.call("PATCH", "/v1/admin/projects/acme", { limits: { max_queued: 10 } });
    expect(again.json.limits).toMatchObject({ burst: 100, max_in_flight: 200, max_queued: 10 });

    expect((await operator.call("DELETE", "/v1/admin/projects/acme")).status).toBe(204);
    expect((await operator.call("GET", "/v1/admin/projects/acme")).status).toBe(404);
    // A deleted project's name is not reused: its runs would show through.
    expect((await operator.call("POST", "/v1/admin/projects", { name: "acme" })).status).toBe(409);
  });

  it("answers bad input with 400, 404 or 409 and a clear message, and changes nothing", async () => {
    const before = (await operator.call("GET", "/v1/admin/projects")).json;
    const bad: [string, string, unknown, number, RegExp][] = [
      ["POST", "/v1/admin/projects", { name: "Acme" }, 400, /\^\[a-z\]/],
      ["POST", "/v1/admin/projects", { name: "v1" }, 400, /reserved/],
      ["POST", "/v1/admin/projects", { name: "dashboard" }, 400, /reserved/],
      ["POST", "/v1/admin/projects", { name: "a".repeat(64) }, 400, /\^\[a-z\]/],
      ["POST", "/v1/admin/projects", { name: "ok", extra: 1 }, 400, /extra|unrecognized/i],
      ["POST", "/v1/admin/projects", { name: 7 }, 400, /name/],
      ["POST", "/v1/admin/projects", "not json", 400, /JSON/],
      ["POST", "/v1/admin/projects", { name: "dev" }, 409, /exists/],
      ["PATCH", "/v1/admin/projects/dev", { limits: { max_in_flight: -1 } }, 400, /max_in_flight/],
      ["PATCH", "/v1/admin/projects/dev", { limits: { burst: 1.5 } }, 400, /burst/],
      ["PATCH", "/v1/admin/projects/dev", { limits: { max_inflight: 3 } }, 400, /max_inflight/],
      ["PATCH", "/v1/admin/projects/dev", { max_in_flight: 3 }, 400, /limits|max_in_flight/],
      ["PATCH", "/v1/admin/projects/nope", { limits: { burst: 1 } }, 404, /nope/],
      ["GET", "/v1/admin/projects/nope", undefined, 404, /nope/],
      ["DELETE", "/v1/admin/projects/nope", undefined, 404, /nope/],
      ["POST", "/v1/admin/projects/dev/keys", { name: "k", scopes: ["root"] }, 400, /root/],
      ["POST", "/v1/admin/projects/dev/keys", { name: "k", scopes: [] }, 400, /scopes/],
      ["POST", "/v1/admin/projects/dev/keys", { name: "", scopes: ["read"] }, 400, /name/],
      ["POST", "/v1/admin/projects/dev/keys", { name: "k", scopes: ["read", "read"] }, 400, /twice/],
      ["POST", "/v1/admin/projects/nope/keys", { name: "k", scopes: ["read"] }, 404, /nope/],
      ["GET", "/v1/admin/projects/nope/keys", undefined, 404, /nope/],
      ["DELETE", "/v1/admin/keys/not-a-key", undefined, 404, /not-a-key/],
      ["DELETE", "/v1/admin/keys/00000000-0000-4000-8000-000000000000", undefined, 404, /not found/],
    ];
    for (const [method, path, body, status, message] of bad) {
      const r = await operator.call(method, path, body);
      expect(r.status, `${method} ${path} ${JSON.stringify(body)}: ${r.text}`).toBe(status);
      expect(r.json.error.message, `${method} ${path}`).toMatch(message);
    }
    expect((await operator.call("GET", "/v1/admin/projects")).json).toEqual(before);
    expect((await operator.call("GET", "/v1/admin/projects/dev/keys")).json.keys).toHaveLength(1);
  });

  it("makes keys whose secret is shown once, lists them without it, and serves the same over gRPC", async () => {
    await projectWithKey("grpc-co");
    const made = await operator.call("POST", "/v1/admin/projects/grpc-co/keys", { name: "ci", scopes: ["invoke", "read"] });
    expect(made.json).toEqual({
      id: expect.any(String),
      project: "grpc-co",
      key: expect.stringMatching(/^lh_/),
      name: "ci",
      scopes: ["read", "invoke"],
      prefix: (made.json.key as string).slice(0, 11),
      created_at: expect.any(String),
      last_used_at: null,
    });
    const listed = await operator.call("GET", "/v1/admin/projects/grpc-co/keys");
    expect(listed.json.keys.map((k: { name: string }) => k.name)).toEqual(["all", "ci"]);
    expect(listed.text).not.toContain(made.json.key);

    const admin = createClient(adminPb.AdminServiceClient, mesh.addresses.scheduler);
    try {
      const md = new Metadata();
      md.set("authorization", `Bearer ${mesh.adminKey}`);
      const got = await callUnary(admin.getProject.bind(admin), { name: "grpc-co" }, md, 10_000);
      expect(got.project?.name).toBe("grpc-co");
      const keys = await callUnary(admin.listKeys.bind(admin), { project: "grpc-co" }, md, 10_000);
      expect(keys.keys.map((k) => k.name)).toEqual(["all", "ci"]);
      const projectKey = new Metadata();
      projectKey.set("authorization", `Bearer ${mesh.apiKey}`);
      await expect(callUnary(admin.listProjects.bind(admin), {}, projectKey, 10_000)).rejects.toMatchObject({ code: "unauthenticated" });
    } finally {
      admin.close();
    }
  });
});

describe("scopes", () => {
  it("refuses a call outside the key's scopes with a 403 naming the scope", async () => {
    const { api: owner } = await projectWithKey("scoped");
    expect((await owner.putApp("echo", { url: app.url })).status).toBe(201);
    const readOnly = gateway(mesh.ingressUrl, (await operator.call("POST", "/v1/admin/projects/scoped/keys", { name: "r", scopes: ["read"] })).json.key);
    const invokeOnly = gateway(mesh.ingressUrl, (await operator.call("POST", "/v1/admin/projects/scoped/keys", { name: "i", scopes: ["invoke"] })).json.key);

    const id = await submit(invokeOnly, "scoped", "echo");
    const denied = async (api: ReturnType<typeof gateway>, method: string, path: string, scope: string, body?: unknown) => {
      const r = await api.call(method, path, body);
      expect(r.status, `${method} ${path}: ${r.text}`).toBe(403);
      expect(r.json.error.code).toBe("permission_denied");
      expect(r.json.error.message).toContain(`'${scope}'`);
    };
    await denied(readOnly, "POST", "/scoped/echo/x?async=true", "invoke", "{}");
    await denied(readOnly, "GET", "/scoped/echo/x", "invoke");
    await denied(readOnly, "POST", `/v1/runs/${id}/cancel`, "invoke");
    await denied(readOnly, "PUT", "/v1/apps/echo", "admin", { url: app.url });
    await denied(readOnly, "GET", "/v1/webhooks/secret", "admin");
    await denied(readOnly, "GET", "/v1/keys", "admin");
    await denied(invokeOnly, "GET", `/v1/runs/${id}`, "read");
    await denied(invokeOnly, "GET", `/v1/runs/${id}/result`, "read");
    await denied(invokeOnly, "GET", "/v1/runs", "read");
    await denied(invokeOnly, "GET", "/v1/apps", "read");

    expect((await readOnly.finished(id)).status).toBe("succeeded");
    expect((await readOnly.call("GET", `/v1/runs/${id}/result`)).text).toBe("answer to /x");

    // Over gRPC too.
    const runs = createClient(runsPb.RunServiceClient, mesh.addresses.scheduler);
    try {
      const md = new Metadata();
      md.set("authorization", `Bearer ${(await operator.call("POST", "/v1/admin/projects/scoped/keys", { name: "r2", scopes: ["read"] })).json.key}`);
      await expect(
        callUnary(runs.submitRun.bind(runs), runsPb.SubmitRunRequest.fromPartial({ app: "echo", request: { method: "POST", path: "/" } }), md, 10_000),
      ).rejects.toMatchObject({ code: "permission_denied", message: expect.stringContaining("'invoke'") });
    } finally {
      runs.close();
    }
  });

  it("lets a project admin manage its own keys, never with more scopes than it has", async () => {
    const { api: owner } = await projectWithKey("self-serve");
    const made = await owner.call("POST", "/v1/keys", { name: "deploy", scopes: ["invoke"] });
    expect(made.status, made.text).toBe(201);
    expect(made.json).toMatchObject({ project: "self-serve", name: "deploy", scopes: ["invoke"], key: expect.stringMatching(/^lh_/) });
    expect((await owner.call("GET", "/v1/keys")).json.keys.map((k: { name: string }) => k.name)).toEqual(["all", "deploy"]);

    // A key with admin but not invoke cannot grant invoke.
    const adminRead = gateway(mesh.ingressUrl, (await owner.call("POST", "/v1/keys", { name: "ar", scopes: ["admin", "read"] })).json.key);
    const over = await adminRead.call("POST", "/v1/keys", { name: "more", scopes: ["invoke"] });
    expect(over.status).toBe(403);
    expect(over.json.error.message).toContain("'invoke'");

    // Another project's key id is a 404, and nothing is revoked.
    const other = await projectWithKey("neighbour");
    expect((await owner.call("DELETE", `/v1/keys/${other.id}`)).status).toBe(404);
    expect((await other.api.call("GET", "/v1/apps")).status).toBe(200);

    expect((await owner.call("DELETE", `/v1/keys/${made.json.id}`)).status).toBe(204);
    expect((await owner.call("GET", "/v1/keys")).json.keys.map((k: { name: string }) => k.name)).toEqual(["all", "ar"]);
  });

  it("keeps LONGHAUL_DEV_API_KEY the dev project's key with every scope", async () => {
    const dev = gateway(mesh.ingressUrl, mesh.apiKey);
    expect((await dev.call("GET", "/v1/project")).json).toEqual({ project: "dev" });
    expect((await dev.call("GET", "/v1/keys")).json.keys[0]).toMatchObject({ project: "dev", scopes: ["read", "invoke", "admin"] });
  });
});

describe("two tenants", () => {
  it("cannot see or touch each other's runs and apps: 404, not 403", async () => {
    const a = await projectWithKey("tenant-a");
    const b = await projectWithKey("tenant-b");
    expect((await a.api.putApp("mine", { url: app.url })).status).toBe(201);
    const id = await submit(a.api, "tenant-a", "mine");
    await a.api.finished(id);
    const probes: [string, string, unknown?][] = [
      ["GET", `/v1/runs/${id}`],
      ["GET", `/v1/runs/${id}?wait=1`],
      ["GET", `/v1/runs/${id}/result`],
      ["GET", `/v1/runs/${id}/request`],
      ["GET", `/v1/runs/${id}/events`],
      ["GET", `/v1/runs/${id}/deliveries`],
      ["POST", `/v1/runs/${id}/cancel`],
      ["POST", `/v1/runs/${id}/retry`],
      ["POST", `/v1/runs/${id}/webhook/redeliver`],
      ["GET", "/v1/apps/mine"],
      ["GET", "/v1/apps/mine/outcomes"],
      ["DELETE", "/v1/apps/mine"],
      ["POST", "/tenant-a/mine/x?async=true", "{}"],
      ["GET", "/tenant-a/mine/x"],
    ];
    for (const [method, path, body] of probes) {
      const r = await b.api.call(method, path, body);
      expect(r.status, `${method} ${path}: ${r.text}`).toBe(404);
    }
    expect((await b.api.call("GET", "/v1/runs")).json.runs).toEqual([]);
    expect((await b.api.call("GET", "/v1/apps")).json.apps).toEqual([]);
    // Nothing changed on A's side.
    expect((await a.api.call("GET", "/v1/apps/mine")).status).toBe(200);
    expect((await a.api.call("GET", "/v1/runs")).json.runs.map((r: { run_id: string }) => r.run_id)).toEqual([id]);
  });
});

describe("revoking a key", () => {
  it("refuses it everywhere, an open event stream included, and leaves other keys working", async () => {
    const { api: owner } = await projectWithKey("revoke-me");
    expect((await owner.putApp("slow", { url: app.url })).status).toBe(201);
    const doomed = (await operator.call("POST", "/v1/admin/projects/revoke-me/keys", { name: "doomed", scopes: ["read", "invoke"] })).json;
    const api = gateway(mesh.ingressUrl, doomed.key);
    const id = await submit(api, "revoke-me", "slow", "/hold");
    await app.waitFor(1, "/hold");

    // An event stream open on the held run before the key goes.
    const stream = await fetch(`${mesh.ingressUrl}/v1/runs/${id}/events`, { headers: { authorization: `Bearer ${doomed.key}` } });
    expect(stream.status).toBe(200);
    const text = stream.text();

    // The key has been used: the listing says when.
    await eventually(async () => {
      const keys = (await operator.call("GET", "/v1/admin/projects/revoke-me/keys")).json.keys as { id: string; last_used_at: string | null }[];
      return keys.find((k) => k.id === doomed.id)?.last_used_at;
    });

    expect((await operator.call("DELETE", `/v1/admin/keys/${doomed.id}`)).status).toBe(204);
    expect((await operator.call("DELETE", `/v1/admin/keys/${doomed.id}`)).status).toBe(404);

    // The open stream ends, telling why.
    const frames = await text;
    expect(frames).toContain("event: error");
    expect(frames).toContain("unauthenticated");
    // Every route refuses it.
    await eventually(async () => (await api.call("GET", `/v1/runs/${id}`)).status === 401);
    expect((await api.call("POST", "/revoke-me/slow/x?async=true", "{}")).status).toBe(401);
    const runs = createClient(runsPb.RunServiceClient, mesh.addresses.scheduler);
    try {
      const md = new Metadata();
      md.set("authorization", `Bearer ${doomed.key}`);
      await expect(callUnary(runs.getRun.bind(runs), { runId: id, waitSeconds: 0 }, md, 10_000)).rejects.toMatchObject({ code: "unauthenticated" });
    } finally {
      runs.close();
    }
    // The run it started goes on; the project's other key still works.
    release();
    expect((await owner.finished(id)).status).toBe("succeeded");
    held = new Promise<void>((r) => (release = r));
  });

  it("deleting a project revokes its keys and refuses its new runs", async () => {
    const { api } = await projectWithKey("short-lived");
    expect((await api.putApp("echo", { url: app.url })).status).toBe(201);
    expect((await operator.call("DELETE", "/v1/admin/projects/short-lived")).status).toBe(204);
    await eventually(async () => (await api.call("POST", "/short-lived/echo/x?async=true", "{}")).status === 401);
  });
});

describe("stored app bodies", () => {
  it("are served as attachments that never run on Longhaul's origin; a sync answer passes unchanged", async () => {
    const { api } = await projectWithKey("html-app");
    expect((await api.putApp("page", { url: app.url })).status).toBe(201);
    const id = await submit(api, "html-app", "page", "/html");
    expect((await api.finished(id)).status).toBe("succeeded");
    for (const format of ["", "?format=json", "?format=preview"]) {
      const r = await api.call("GET", `/v1/runs/${id}/result${format}`);
      expect(r.status, format).toBe(200);
      expect(r.headers.get("x-content-type-options"), format).toBe("nosniff");
      expect(r.headers.get("content-security-policy"), format).toBe("sandbox");
      expect(r.headers.get("content-disposition"), format).toMatch(/^attachment/);
    }
    const raw = await api.call("GET", `/v1/runs/${id}/result`);
    expect(raw.headers.get("content-type")).toBe("text/html");
    expect(raw.text).toContain("<script>");

    const sync = await api.call("GET", "/html-app/page/html");
    expect(sync.status).toBe(200);
    expect(sync.headers.get("content-type")).toBe("text/html");
    expect(sync.headers.get("content-disposition")).toBeNull();
    expect(sync.headers.get("content-security-policy")).toBeNull();
  });
});

describe("the audit log", () => {
  it("records every admin action, who did it and when, newest first, paged and per project", async () => {
    const { api: owner, id: ownerKey } = await projectWithKey("audited");
    expect((await operator.call("PATCH", "/v1/admin/projects/audited", { limits: { max_queued: 7 } })).status).toBe(200);
    const own = (await owner.call("POST", "/v1/keys", { name: "bot", scopes: ["read"] })).json;
    expect((await owner.call("DELETE", `/v1/keys/${own.id}`)).status).toBe(204);

    const page = await operator.call("GET", "/v1/admin/audit?project=audited");
    expect(page.status, page.text).toBe(200);
    const entries = page.json.entries as { actor: string; action: string; project: string; target: string | null; detail: Record<string, unknown>; at: string }[];
    expect(entries.map((e) => e.action)).toEqual(["key.revoke", "key.create", "project.limits", "key.create", "project.create"]);
    const fingerprint = (await operator.call("GET", "/v1/admin/whoami")).json.key_fingerprint;
    expect(entries[0]).toMatchObject({ actor: `key:${ownerKey}`, project: "audited", target: own.id, detail: { name: "bot" } });
    expect(entries[1]).toMatchObject({ actor: `key:${ownerKey}`, target: own.id, detail: { name: "bot", scopes: ["read"] } });
    expect(entries[2]).toMatchObject({ actor: `operator:${fingerprint}`, detail: { max_queued: 7 } });
    expect(entries[4]).toMatchObject({ actor: `operator:${fingerprint}`, project: "audited", target: null });
    expect(JSON.stringify(entries)).not.toContain(own.key);

    // Two a page, to the end.
    const seen: string[] = [];
    let cursor = "";
    for (let i = 0; i < 5; i++) {
      const p = await operator.call("GET", `/v1/admin/audit?project=audited&limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...(p.json.entries as { action: string }[]).map((e) => e.action));
      if (!p.json.next_cursor) break;
      cursor = p.json.next_cursor as string;
    }
    expect(seen).toEqual(entries.map((e) => e.action));

    for (const q of ["limit=500", "limit=x", "cursor=zz", "project=Nope", "since=1"]) {
      const r = await operator.call("GET", `/v1/admin/audit?${q}`);
      expect(r.status, `${q}: ${r.text}`).toBe(400);
    }
    expect((await owner.call("GET", "/v1/admin/audit")).status).toBe(401);
  });
});

describe("GetRunInput over gRPC", () => {
  it("masks the stored request's secrets as the HTTP API does", async () => {
    const { api, key } = await projectWithKey("masked");
    expect((await api.putApp("echo", { url: app.url })).status).toBe(201);
    const r = await api.call("POST", "/masked/echo/x?async=true&token=t0p&page=2", "{}", { "x-api-key": "sk_live_1", "x-visible": "yes" });
    expect(r.status).toBe(202);
    const runs = createClient(runsPb.RunServiceClient, mesh.addresses.scheduler);
    try {
      const md = new Metadata();
      md.set("authorization", `Bearer ${key}`);
      const input = await callUnary(runs.getRunInput.bind(runs), { runId: r.json.run_id }, md, 10_000);
      const headers = Object.fromEntries(input.request!.headers.map((h) => [h.name.toLowerCase(), h.value]));
      expect(headers["x-api-key"]).toBe("••••••");
      expect(headers["x-visible"]).toBe("yes");
      expect(input.request!.query).toContain("page=2");
      expect(input.request!.query).not.toContain("t0p");
    } finally {
      runs.close();
    }
  });
});
