// Starts a private nats-server with JetStream for `npm start` and `npm test`
// when no NATS_URL answers. Installs Debian's nats-server when it is missing
// and we are root with apt-get (a fresh CI machine).
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { freePort, waitForTcp } from "./net.mjs";

function findNatsServer() {
  const dirs = [...(process.env.PATH ?? "").split(path.delimiter), "/usr/sbin", "/usr/bin", "/usr/local/bin"];
  for (const dir of dirs.filter(Boolean)) {
    const file = path.join(dir, "nats-server");
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

const HOW_TO_INSTALL =
  "nats-server is not installed. Install it (Debian/Ubuntu: `apt-get install -y nats-server`; " +
  "others: https://docs.nats.io/running-a-nats-service/introduction/installation), " +
  "or point NATS_URL at a NATS server with JetStream enabled.";

/** nats-server's path, installing it with apt-get when we may. */
export function ensureNatsServerBinary(log) {
  const found = findNatsServer();
  if (found) return found;
  const root = process.getuid?.() === 0;
  const hasApt = spawnSync("sh", ["-c", "command -v apt-get"]).status === 0;
  if (!root || !hasApt) throw new Error(HOW_TO_INSTALL);
  log("nats: nats-server missing; installing it with apt-get");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  for (const args of [["update"], ["install", "-y", "--no-install-recommends", "nats-server"]]) {
    const r = spawnSync("apt-get", args, { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(" ")} failed:\n${r.stdout}\n${r.stderr}\n${HOW_TO_INSTALL}`);
  }
  const installed = findNatsServer();
  if (!installed) throw new Error(HOW_TO_INSTALL);
  return installed;
}

/** Resolves when the server at `url` answers a JetStream API call; throws otherwise. */
export async function checkJetStream(url, timeoutMs = 5_000) {
  const nc = await connect({ servers: url.split(","), timeout: timeoutMs, maxReconnectAttempts: 0 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
    await jsm.getAccountInfo();
  } finally {
    await nc.close();
  }
}

/**
 * Starts `nats-server -a 127.0.0.1 -p PORT -js -sd <dir>` on a free port, in
 * its own process group, logging to `<dir>.log`. Resolves once it accepts
 * connections and JetStream answers.
 */
export async function startNats({ dir, log }) {
  const bin = ensureNatsServerBinary(log);
  fs.mkdirSync(dir, { recursive: true });
  const logFile = `${dir}.log`;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const out = fs.openSync(logFile, "a");
    const child = spawn(bin, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir], {
      detached: true,
      stdio: ["ignore", out, out],
    });
    fs.closeSync(out);
    let exited = false;
    child.once("exit", () => (exited = true));
    child.once("error", () => (exited = true));
    try {
      await waitForTcp("127.0.0.1", port, { timeoutMs: 30_000, what: "nats-server", alive: () => !exited });
      const url = `nats://127.0.0.1:${port}`;
      await checkJetStream(url);
      return natsHandle(child, url, logFile, () => exited);
    } catch (err) {
      if (!exited) killGroup(child.pid, "SIGKILL");
      const logTail = fs.readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-20).join("\n");
      // The port was taken between freePort() and bind: try another.
      if (attempt < 3 && /address already in use/i.test(logTail)) continue;
      throw new Error(`nats-server did not start: ${err.message}\n--- ${logFile} ---\n${logTail}`);
    }
  }
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function natsHandle(child, url, logFile, hasExited) {
  let stopped = false;
  return {
    url,
    pid: child.pid,
    logFile,
    /** SIGTERM (nats-server flushes JetStream and exits), SIGKILL after 10 s. */
    async stop() {
      if (stopped) return;
      stopped = true;
      if (hasExited()) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      killGroup(child.pid, "SIGTERM");
      const timer = setTimeout(() => killGroup(child.pid, "SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
    stopSync() {
      if (stopped) return;
      stopped = true;
      killGroup(child.pid, "SIGTERM");
    },
  };
}
