// Migrations as a step before the rollout: the services wait for the migrate
// command rather than migrating at start, and a build serves (and its migrate
// command succeeds) against a database that holds migrations newer than it
// knows, so that rolling an image back works.
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../scripts/lib/mesh.mjs";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

const run = promisify(execFile);
const MIGRATE = path.join(repoRoot, "services", "migrate", "dist", "main.js");
/** A migration of a release after this build: it expands the schema, as a release's migrations do. */
const NEWER = "9999_from_a_newer_release";

let app: Peer;
let mesh: TestMesh | undefined;
/** Meshes started by a try of the first test, each stopped at the end (a failed try's too). */
const started: Promise<TestMesh>[] = [];
const logDirs: string[] = [];

beforeAll(async () => {
  app = await startPeer();
  app.handle((_req, res) => res.end("done"));
});

afterAll(async () => {
  await Promise.all(started.map((m) => m.then((x) => x.cleanup(), () => {})));
  await app?.close();
  for (const dir of logDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** The end of a service's log, for a failure's message. */
function logTail(logDir: string, file: string): string {
  const at = path.join(logDir, file);
  return fs.existsSync(at) ? fs.readFileSync(at, "utf8").split("\n").slice(-15).join("\n") : `(no ${file})`;
}

function migrateCommand(databaseUrl: string) {
  return run(process.execPath, [MIGRATE], { env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: "info" } });
}

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

describe("migrations as a step", () => {
  // Services may take up to a minute to start when CI runs test files side by side (helpers/mesh.ts).
  it("services wait for the migrate command, then serve against a schema newer than they know", { timeout: 150_000 }, async () => {
    // The mesh without its migrate step: the services start and wait. Each
    // try has its own logs, so that a retry never reads the try before's.
    const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "lh-migrations-"));
    logDirs.push(logDir);
    let databaseUrl = "";
    const starting = startTestMesh({
      migrate: false,
      logDir,
      databaseUrl: (url) => (databaseUrl = url),
      env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true" },
    });
    started.push(starting);
    starting.catch(() => {});
    await eventually(
      async () => fs.existsSync(path.join(logDir, "scheduler-0.log")) && fs.readFileSync(path.join(logDir, "scheduler-0.log"), "utf8").includes("waiting for the migrate command"),
      60_000,
      "the scheduler to wait for the migrate command",
    ).catch((err: Error) => {
      throw new Error(`${err.message}; the scheduler's log ends:\n${logTail(logDir, "scheduler-0.log")}`);
    });
    // A service no longer migrates at start: nothing was created.
    expect(await query(databaseUrl, "select to_regclass('scheduler_migrations') as t")).toEqual([{ t: null }]);

    // The migrate step of a newer release: this build's migrations, then one this build does not know.
    await migrateCommand(databaseUrl);
    for (const table of ["scheduler_migrations", "notifier_migrations"]) {
      await query(databaseUrl, `insert into ${table} (name, timestamp) values ('${NEWER}', '${new Date().toISOString()}')`);
    }
    await query(databaseUrl, "alter table runs add column from_a_newer_release text");

    mesh = await starting;
    const api = gateway(mesh.ingressUrl!, mesh.apiKey);
    expect([200, 201]).toContain((await api.putApp("echo", { url: app.url })).status);
    const submitted = await api.call("POST", "/dev/echo/x?async=true", "hi");
    expect(submitted.status, submitted.text).toBe(202);
    const id = submitted.json.run_id as string;
    await eventually(async () => (await api.getRun(id)).json?.status === "succeeded", 30_000, "the run to succeed");
    expect(mesh.logs("scheduler")).toContain("the database holds migrations newer than this build");
  });

  it("the migrate command of an older build leaves newer migrations alone, and a restarted service serves", async () => {
    if (!mesh) throw new Error("the first test did not start the mesh");
    const { stdout, stderr } = await migrateCommand(mesh.database.url);
    expect(stdout + stderr).toContain("the database holds migrations newer than this build");
    const rows = await query<{ name: string }>(mesh.database.url, `select name from scheduler_migrations where name = '${NEWER}'`);
    expect(rows).toHaveLength(1);

    await mesh.kill("scheduler", 0);
    await mesh.start("scheduler", 0);
    const api = gateway(mesh.ingressUrl!, mesh.apiKey);
    // The gateway's channel to the restarted copy reconnects after a back-off: 503 until then.
    const submitted = await eventually(async () => {
      const r = await api.call("POST", "/dev/echo/y?async=true", "again");
      return r.status === 202 ? r : undefined;
    }, 30_000, "a submit to be accepted");
    await eventually(async () => (await api.getRun(submitted.json.run_id as string)).json?.status === "succeeded", 30_000, "the run to succeed");
  });
});
