// The `longhaul` CLI as a user runs it: the linked bin in node_modules/.bin,
// a real process per command, against a real mesh. Exit codes are the
// contract: 0 succeeded/accepted, 1 ended otherwise, 2 usage or API error,
// 3 --wait ran out.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../scripts/lib/mesh.mjs";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let hooks: Peer;
const BIN = join(repoRoot, "node_modules", ".bin", "longhaul");

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function longhaul(args: string[], options: { stdin?: string; env?: Record<string, string>; command?: string[] } = {}): Promise<Ran> {
  const [cmd, ...pre] = options.command ?? [process.execPath, BIN];
  const child = spawn(cmd!, [...pre, ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LONGHAUL_URL: mesh.ingressUrl, LONGHAUL_API_KEY: mesh.apiKey, LONGHAUL_ADMIN_KEY: mesh.adminKey, ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  child.stdin.end(options.stdin ?? "");
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

beforeAll(async () => {
  [mesh, app, hooks] = await Promise.all([
    startTestMesh({ env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true", SCHEDULER_TICK_MS: "200" } }),
    startPeer(),
    startPeer(),
  ]);
  app.handle(async (req, res) => {
    const u = new URL(req.url, "http://x");
    if (u.pathname === "/hold") return; // answers never: cancelled
    res.writeHead(Number(u.searchParams.get("status") ?? 200), { "content-type": "application/json" });
    res.end(JSON.stringify({ path: u.pathname, type: req.headers["content-type"] ?? null, team: req.headers["x-team"] ?? null, body: req.body.toString() }));
  });
  hooks.handle((_req, res) => {
    res.writeHead(204);
    res.end();
  });
});

afterAll(async () => {
  await mesh?.cleanup();
  await app?.close();
  await hooks?.close();
});

describe("longhaul", () => {
  it("is linked into node_modules/.bin, so `npx longhaul` works in the repo", async () => {
    const r = await longhaul(["--version"], { command: ["npx", "--no-install", "longhaul"] });
    expect([r.code, r.stdout.trim()]).toEqual([0, "0.1.0"]);
    const help = await longhaul(["submit", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--wait [seconds]");
  });

  it("apps put|get|list|rm, as tables and as JSON", async () => {
    const put = await longhaul(["apps", "put", "echo", "--url", app.url, "--max-attempts", "1", "--timeout", "600"]);
    expect(put.stderr).toBe("");
    expect(put.code).toBe(0);
    expect(put.stdout).toMatch(/^APP\s+URL/);
    expect(put.stdout).toContain(app.url);
    const got = JSON.parse((await longhaul(["apps", "get", "echo", "--json"])).stdout);
    expect([got.name, got.timeout_seconds, got.retry.max_attempts]).toEqual(["echo", 600, 1]);
    expect(JSON.parse((await longhaul(["--json", "apps", "list"])).stdout).apps.map((a: { name: string }) => a.name)).toContain("echo");
    expect((await longhaul(["apps", "put", "tmp", "--url", app.url])).code).toBe(0);
    expect((await longhaul(["apps", "rm", "tmp"])).code).toBe(0);
    const gone = await longhaul(["apps", "get", "tmp"]);
    expect(gone.code).toBe(2);
    expect(gone.stderr.trim().split("\n")).toHaveLength(1);
    expect(gone.stderr).toContain("not_found");
  });

  it("submit: the id at once, or with --wait the finished run; exit 0 when it succeeded, 1 when not", async () => {
    const accepted = await longhaul(["submit", "echo", "/job?x=1", "-d", '{"a":1}', "-H", "x-team: ml", "--label", "suite=cli"]);
    expect(accepted.code).toBe(0);
    const id = accepted.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const done = await longhaul(["submit", "echo", "/job", "-d", "plain text", "--wait", "--json"]);
    expect(done.code).toBe(0);
    const run = JSON.parse(done.stdout);
    expect(run.status).toBe("succeeded");
    const result = await longhaul(["runs", "result", run.run_id]);
    expect(JSON.parse(result.stdout)).toEqual({ path: "/job", type: "application/octet-stream", team: null, body: "plain text" });

    const first = await longhaul(["runs", "get", id, "--json"]);
    expect(JSON.parse(first.stdout).labels).toEqual({ suite: "cli" });

    const failed = await longhaul(["submit", "echo", "/job?status=500", "--wait"]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/status\s+failed/);
  });

  it("submit --queue-ttl: the run's own start deadline; a run not started by then ends expired (exit 1)", async () => {
    expect((await longhaul(["submit", "--help"])).stdout).toContain("--queue-ttl <seconds>");
    const later = JSON.parse((await longhaul(["submit", "echo", "/job", "--queue-ttl", "600", "--wait", "--json"])).stdout);
    // expires_at is reckoned on the scheduler's clock, created_at on Postgres's: a few ms apart.
    expect(Math.abs(Date.parse(later.expires_at) - Date.parse(later.created_at) - 600_000)).toBeLessThan(1000);
    // One call at a time, held: a run with a 1 s deadline waits behind it and never starts.
    expect((await longhaul(["apps", "put", "one-slot", "--url", app.url, "--max-concurrency", "1", "--max-attempts", "1"])).code).toBe(0);
    const blocker = (await longhaul(["submit", "one-slot", "/hold"])).stdout.trim();
    const expired = await longhaul(["submit", "one-slot", "/never", "--queue-ttl", "1", "--wait", "30", "--json"]);
    expect(expired.code).toBe(1);
    const ended = JSON.parse(expired.stdout);
    expect(ended).toMatchObject({ status: "expired", error_code: "queue_ttl_exceeded", started_at: null });
    expect((await longhaul(["runs", "get", ended.run_id])).stdout).toMatch(new RegExp(`^start by\\s+${ended.expires_at}$`, "m"));
    expect((await longhaul(["runs", "get", blocker])).stdout).not.toContain("start by");
    expect((await longhaul(["runs", "cancel", blocker])).code).toBe(0);
    const bad = await longhaul(["submit", "echo", "/job", "--queue-ttl", "soon"]);
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringContaining("--queue-ttl must be an integer")]);
  });

  it("--data @file and - (stdin) reach the app", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "longhaul-cli-")), "body.json");
    writeFileSync(file, '{"from":"file"}');
    const fromFile = JSON.parse((await longhaul(["submit", "echo", "/f", "--data", `@${file}`, "--wait", "--json"])).stdout);
    const fromStdin = JSON.parse((await longhaul(["submit", "echo", "/s", "--data", "-", "--wait", "--json"], { stdin: "from stdin" })).stdout);
    const body = async (id: string) => JSON.parse((await longhaul(["runs", "result", id])).stdout);
    expect(await body(fromFile.run_id)).toMatchObject({ type: "application/json", body: '{"from":"file"}' });
    expect(await body(fromStdin.run_id)).toMatchObject({ body: "from stdin" });
  });

  it("--wait that runs out exits 3; cancel; watch and retry", async () => {
    const held = await longhaul(["submit", "echo", "/hold", "--wait", "1", "--json"]);
    expect(held.code).toBe(3);
    const id = JSON.parse(held.stdout).run_id as string;
    const cancelled = await longhaul(["runs", "cancel", id]);
    expect([cancelled.code, /status\s+cancelled/.test(cancelled.stdout)]).toEqual([0, true]);
    const watched = await longhaul(["runs", "watch", id]);
    expect(watched.code).toBe(1);
    expect(watched.stdout.trim().split("\n").at(-1)).toContain("cancelled");
    const again = await longhaul(["runs", "retry", id]);
    expect(again.code).toBe(0);
    const newId = again.stdout.trim();
    expect(JSON.parse((await longhaul(["runs", "get", newId, "--json"])).stdout).retry_of).toBe(id);
    await longhaul(["runs", "cancel", newId]);
    const listed = JSON.parse((await longhaul(["runs", "list", "--app", "echo", "--status", "cancelled", "--json"])).stdout);
    expect(listed.runs.map((r: { run_id: string }) => r.run_id)).toEqual(expect.arrayContaining([id, newId]));
    expect((await longhaul(["runs", "list", "--limit", "2"])).stdout.trim().split("\n")).toHaveLength(3);
  });

  it("deliveries and redeliver", async () => {
    const run = JSON.parse((await longhaul(["submit", "echo", "/hooked", "--webhook", `${hooks.url}/in`, "--wait", "--json"])).stdout);
    await hooks.waitFor(1, "/in");
    let d = JSON.parse((await longhaul(["deliveries", run.run_id, "--json"])).stdout);
    for (let i = 0; i < 50 && d.state !== "delivered"; i++) d = JSON.parse((await longhaul(["deliveries", run.run_id, "--json"])).stdout);
    expect(d.state).toBe("delivered");
    const again = await longhaul(["redeliver", run.run_id]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(d.webhook_id);
    await hooks.waitFor(2, "/in");
  });

  it("projects, keys and limits with the operator key", async () => {
    expect((await longhaul(["projects", "create", "acme"])).code).toBe(0);
    expect((await longhaul(["projects", "list"])).stdout).toMatch(/^acme\s/m);
    const key = JSON.parse((await longhaul(["keys", "create", "acme", "--name", "ci", "--scopes", "read,invoke", "--json"])).stdout);
    expect(key.key).toBeTruthy();
    const keys = JSON.parse((await longhaul(["keys", "list", "acme", "--json"])).stdout).keys;
    expect(keys.map((k: { id: string }) => k.id)).toEqual([key.id]);
    expect(JSON.stringify(keys)).not.toContain(key.key);
    // The new key works for its own project.
    const own = await longhaul(["apps", "list", "--json"], { env: { LONGHAUL_API_KEY: key.key } });
    expect([own.code, JSON.parse(own.stdout).apps]).toEqual([0, []]);
    const limits = JSON.parse((await longhaul(["limits", "acme", "--max-queued", "10", "--submits-per-second", "2.5", "--json"])).stdout);
    expect([limits.max_queued, limits.submits_per_second]).toEqual([10, 2.5]);
    expect((await longhaul(["limits", "acme"])).stdout).toMatch(/max_queued\s+10/);
    expect((await longhaul(["keys", "rm", key.id])).code).toBe(0);
    expect((await longhaul(["projects", "rm", "acme"])).code).toBe(0);
    // A project key is not the operator's.
    const denied = await longhaul(["projects", "list"], { env: { LONGHAUL_ADMIN_KEY: mesh.apiKey } });
    expect(denied.code).toBe(2);
  });

  it("usage and API errors: one clear line, exit 2", async () => {
    const unknown = await longhaul(["runs", "get", "00000000-0000-4000-8000-000000000000"]);
    expect([unknown.code, unknown.stderr.trim().split("\n").length]).toEqual([2, 1]);
    expect(unknown.stderr).toMatch(/^longhaul: .*not found.*\(not_found, HTTP 404\)/);
    const noKey = await longhaul(["apps", "list"], { env: { LONGHAUL_API_KEY: "" } });
    expect([noKey.code, noKey.stderr.trim()]).toEqual([2, "longhaul: no API key: set LONGHAUL_API_KEY or pass --api-key"]);
    expect((await longhaul(["frobnicate"])).code).toBe(2);
    expect((await longhaul(["submit", "echo"])).code).toBe(2);
    expect((await longhaul(["submit", "echo", "/x", "-H", "nocolon"])).code).toBe(2);
    const badKey = await longhaul(["apps", "list"], { env: { LONGHAUL_API_KEY: "lh_wrong" } });
    expect([badKey.code, badKey.stderr]).toEqual([2, expect.stringContaining("unauthenticated")]);
  });
});
