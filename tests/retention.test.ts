// Retention that deletes, and erasure on demand (DESIGN.md "Data",
// "Projects, keys and limits"), through the real mesh on a real Postgres:
// runs are backdated in the database, and the scheduler's and the notifier's
// retention passes (every second here) delete whole runs past
// LONGHAUL_RUN_RETENTION_DAYS with their attempts, webhook deliveries and
// Idempotency-Keys, and drop bodies past LONGHAUL_RETENTION_DAYS, leaving
// newer runs alone. DELETE /v1/runs/{id} (and RunService/EraseRun) erases a
// finished run's bodies and headers at once: 409 before it finishes, 404
// for another project, 403 without the admin scope.
import { Metadata } from "@grpc/grpc-js";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callUnary, createClient } from "@longhaul/shared/grpc";
import { runsPb } from "@longhaul/shared/proto";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let hook: Peer;
let api: ReturnType<typeof gateway>;
let db: pg.Client;
/** Released to let the app answer the calls it holds. */
let release: () => void = () => undefined;
const held = new Promise<void>((r) => (release = r));

beforeAll(async () => {
  [mesh, app, hook] = await Promise.all([
    startTestMesh({
      env: {
        LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true",
        SCHEDULER_RETENTION_INTERVAL_SECONDS: "1",
        NOTIFIER_RETENTION_INTERVAL_SECONDS: "1",
      },
    }),
    startPeer(),
    startPeer(),
  ]);
  app.handle(async (req, res) => {
    if (req.url.startsWith("/hold")) await held;
    res.writeHead(200, { "content-type": "application/json", "x-personal": "alice@example.com" });
    res.end(JSON.stringify({ answer: req.url, email: "alice@example.com" }));
  });
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  expect((await api.putApp("echo", { url: app.url })).status).toBe(201);
  db = new pg.Client({ connectionString: mesh.database.url });
  await db.connect();
});

afterAll(async () => {
  release();
  await db?.end();
  await mesh?.cleanup();
  await app?.close();
  await hook?.close();
});

async function submit(path: string, headers: Record<string, string> = {}, webhook = false): Promise<string> {
  const hookParam = webhook ? `&webhookEndpoint=${encodeURIComponent(`${hook.url}/hook`)}` : "";
  const r = await api.call("POST", `/dev/echo${path}?async=true${hookParam}`, '{"name":"alice"}', {
    "content-type": "application/json",
    "x-user": "alice",
    ...headers,
  });
  expect(r.status, r.text).toBe(202);
  return r.json.run_id as string;
}

async function count(table: string, where: string, params: unknown[]): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`select count(*)::int as n from ${table} where ${where}`, params);
  return rows[0]!.n;
}

describe("retention", () => {
  it("deletes runs ended past LONGHAUL_RUN_RETENTION_DAYS with their attempts, deliveries and keys, drops bodies past LONGHAUL_RETENTION_DAYS, and keeps newer runs", async () => {
    const old = await submit("/old", { "idempotency-key": "retained-key" }, true);
    const aging = await submit("/aging");
    const fresh = await submit("/fresh");
    for (const id of [old, aging, fresh]) await api.finished(id);
    await eventually(async () => (await api.getRun(old)).json?.webhook_state === "delivered", 20_000, "webhook delivered");
    expect(await count("run_attempts", "run_id = $1", [old])).toBe(1);
    expect(await count("webhook_deliveries", "run_id = $1", [old])).toBe(1);
    expect(await count("idempotency_keys", "run_id = $1", [old])).toBe(1);

    // Backdated: `old` ended 31 days ago (its delivery settled then, its key
    // expired), `aging` 8 days ago. Defaults: 30 and 7 days.
    await db.query(`update runs set created_at = now() - interval '31 days', finished_at = now() - interval '31 days' where id = $1`, [old]);
    await db.query(`update webhook_deliveries set updated_at = now() - interval '31 days' where run_id = $1`, [old]);
    await db.query(`update idempotency_keys set expires_at = now() - interval '30 days' where run_id = $1`, [old]);
    await db.query(`update runs set finished_at = now() - interval '8 days' where id = $1`, [aging]);

    await eventually(async () => (await api.getRun(old)).status === 404, 20_000, "the old run deleted");
    await eventually(async () => (await count("webhook_deliveries", "run_id = $1", [old])) === 0, 20_000, "its delivery deleted");
    expect(await count("run_attempts", "run_id = $1", [old])).toBe(0);
    expect(await count("webhook_attempts", "run_id = $1", [old])).toBe(0);
    expect(await count("idempotency_keys", "run_id = $1", [old])).toBe(0);
    expect((await api.call("GET", `/v1/runs/${old}/deliveries`)).status).toBe(404);

    await eventually(async () => (await api.call("GET", `/v1/runs/${aging}/request`)).json?.body_stored === false, 20_000, "bodies dropped");
    const agingRun = await api.getRun(aging);
    expect(agingRun.status).toBe(200);
    expect(agingRun.json.status).toBe("succeeded");
    expect((await api.call("GET", `/v1/runs/${aging}/result?format=json`)).json).toMatchObject({ status_code: 200, body_base64: "", body_gone: true });
    // The raw form has no body to send: a clear 410, not an empty body under the app's content type.
    const gone = await api.call("GET", `/v1/runs/${aging}/result`);
    expect(gone.status).toBe(410);
    expect(gone.headers.get("content-type")).toMatch(/^application\/json/);
    expect(gone.json.error).toMatchObject({ code: "result_gone", message: expect.stringContaining("retention") });
    // Bodies go, headers stay (only an erasure takes those).
    expect((await api.call("GET", `/v1/runs/${aging}/request`)).json.headers).toEqual(
      expect.arrayContaining([{ name: "x-user", value: "alice" }]),
    );

    const freshInput = await api.call("GET", `/v1/runs/${fresh}/request`);
    expect(freshInput.json.body_stored).toBe(true);
    const freshResult = (await api.call("GET", `/v1/runs/${fresh}/result?format=json`)).json;
    expect(JSON.parse(Buffer.from(freshResult.body_base64, "base64").toString())).toEqual({ answer: "/fresh", email: "alice@example.com" });
    expect(freshResult.body_gone).toBe(false);
    const freshRaw = await api.call("GET", `/v1/runs/${fresh}/result`);
    expect(freshRaw.status).toBe(200);
    expect(freshRaw.json).toEqual({ answer: "/fresh", email: "alice@example.com" });

    // The deleted run's Idempotency-Key names nothing now: the same key makes a new run.
    const again = await submit("/old", { "idempotency-key": "retained-key" });
    expect(again).not.toBe(old);
  });
});

describe("DELETE /v1/runs/{id}", () => {
  it("erases a finished run's bodies and headers at once, and says who did it in the audit log", async () => {
    const id = await submit("/erase");
    await api.finished(id);
    expect((await api.call("GET", `/v1/runs/${id}/request`)).json.body_stored).toBe(true);
    const before = await api.call("GET", `/v1/runs/${id}/result`);
    expect(before.status).toBe(200);
    expect(before.headers.get("content-type")).toBe("application/json");
    expect(before.json).toMatchObject({ answer: "/erase" });

    const r = await api.call("DELETE", `/v1/runs/${id}`);
    expect(r.status, r.text).toBe(204);

    const run = await api.getRun(id);
    expect(run.json).toMatchObject({ run_id: id, status: "succeeded", status_code: 200 });
    const input = await api.call("GET", `/v1/runs/${id}/request`);
    expect(input.json).toMatchObject({ body_stored: false, headers: [] });
    const result = await api.call("GET", `/v1/runs/${id}/result?format=json`);
    expect(result.status).toBe(200);
    expect(result.json).toMatchObject({ headers: [], content_type: null, body_base64: "", body_gone: true });
    const preview = await api.call("GET", `/v1/runs/${id}/result?format=preview`);
    expect(preview.json).toMatchObject({ status_code: 200, body_gone: true });
    const raw = await api.call("GET", `/v1/runs/${id}/result`);
    expect(raw.status).toBe(410);
    expect(raw.json.error).toMatchObject({ code: "result_gone", message: expect.stringContaining("erased") });
    expect(result.text).not.toContain("alice");
    const { rows } = await db.query(`select request_body, response_body, request_headers, response_headers from runs where id = $1`, [id]);
    expect(rows[0]).toEqual({ request_body: null, response_body: null, request_headers: [], response_headers: [] });

    const audit = await gateway(mesh.ingressUrl, mesh.adminKey).call("GET", "/v1/admin/audit?project=dev");
    expect(audit.json.entries[0]).toMatchObject({ action: "run.erase", project: "dev", target: id, actor: expect.stringMatching(/^key:/) });
    // Erasing again is no error: there is nothing left to erase.
    expect((await api.call("DELETE", `/v1/runs/${id}`)).status).toBe(204);
  });

  it("is 409 for a run not finished, 404 for another project's run or a bad id, 403 without the admin scope, and changes nothing", async () => {
    const operator = gateway(mesh.ingressUrl, mesh.adminKey);
    expect((await operator.call("POST", "/v1/admin/projects", { name: "other" })).status).toBe(201);
    const otherKey = (await operator.call("POST", "/v1/admin/projects/other/keys", { name: "all", scopes: ["read", "invoke", "admin"] })).json.key;
    const readKey = (await operator.call("POST", "/v1/admin/projects/dev/keys", { name: "ro", scopes: ["read", "invoke"] })).json.key;

    const running = await submit("/hold");
    await eventually(async () => (await api.getRun(running)).json?.status === "running", 20_000, "running");
    const busy = await api.call("DELETE", `/v1/runs/${running}`);
    expect(busy.status).toBe(409);
    expect(busy.json.error).toMatchObject({ code: "conflict", message: expect.stringContaining("running") });

    const done = await submit("/kept");
    await api.finished(done);
    const other = await gateway(mesh.ingressUrl, otherKey).call("DELETE", `/v1/runs/${done}`);
    expect(other.status).toBe(404);
    const denied = await gateway(mesh.ingressUrl, readKey).call("DELETE", `/v1/runs/${done}`);
    expect(denied.status).toBe(403);
    expect(denied.json.error).toMatchObject({ code: "permission_denied", message: expect.stringContaining("'admin'") });
    expect((await api.call("DELETE", "/v1/runs/not-a-run")).status).toBe(404);
    expect((await api.call("GET", `/v1/runs/${done}/request`)).json.body_stored).toBe(true);

    release();
    await api.finished(running);
    expect((await api.call("GET", `/v1/runs/${running}/request`)).json.body_stored).toBe(true);
  });

  it("is RunService/EraseRun over gRPC, NOT_FOUND for another project's run", async () => {
    const id = await submit("/grpc-erase");
    await api.finished(id);
    const client = createClient(runsPb.RunServiceClient, mesh.addresses.scheduler);
    try {
      const as = (key: string) => {
        const md = new Metadata();
        md.set("authorization", `Bearer ${key}`);
        return md;
      };
      const operator = gateway(mesh.ingressUrl, mesh.adminKey);
      expect((await operator.call("POST", "/v1/admin/projects", { name: "grpc-other" })).status).toBe(201);
      const otherKey = (await operator.call("POST", "/v1/admin/projects/grpc-other/keys", { name: "all", scopes: ["admin"] })).json.key;
      await expect(callUnary(client.eraseRun.bind(client), { runId: id }, as(otherKey), 5_000)).rejects.toMatchObject({ code: "not_found" });
      const res = await callUnary(client.eraseRun.bind(client), { runId: id }, as(mesh.apiKey), 5_000);
      expect(res.run?.id).toBe(id);
      expect((await api.call("GET", `/v1/runs/${id}/request`)).json.body_stored).toBe(false);
    } finally {
      client.close();
    }
  });
});
