#!/usr/bin/env node
// Usage: node scripts/with-deps.mjs CMD [ARGS...]
// Runs CMD with DATABASE_URL and NATS_URL pointing at a Postgres and a NATS
// JetStream that answer: the ones already named by those variables, else
// throwaway ones started in a fresh temp dir (fsync off) and removed after.
// Exits with CMD's exit code. Used by `npm test` and `npm run bench`.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDeps } from "./lib/deps.mjs";
import { ensureNodeVersion } from "./lib/node-version.mjs";

ensureNodeVersion();

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const [cmd, ...args] = process.argv.slice(2);
if (!cmd) {
  console.error("usage: node scripts/with-deps.mjs CMD [ARGS...]");
  process.exit(2);
}

const log = (m) => console.error(`[with-deps] ${m}`);
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "longhaul-deps-"));
// mkdtemp makes it 0700; as root, Postgres runs as the postgres user and must reach inside.
fs.chmodSync(dataDir, 0o755);
const removeDataDir = () => fs.rmSync(dataDir, { recursive: true, force: true });

// A signal while the deps start: let ensureDeps finish (it cannot be cut
// short), then stop them instead of running CMD.
let interrupted;
const onEarlySignal = (signal) => (interrupted = signal);
for (const s of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(s, onEarlySignal);

let deps;
try {
  deps = await ensureDeps({ dataDir, log, fast: true, handleSignals: false });
} catch (err) {
  log(`could not provide Postgres and NATS: ${err.message}`);
  removeDataDir();
  process.exit(1);
}
for (const s of ["SIGINT", "SIGTERM", "SIGHUP"]) process.off(s, onEarlySignal);
if (interrupted) {
  log(`${interrupted}: stopping the dependencies`);
  await deps.stop();
  removeDataDir();
  process.exit(130);
}

const env = {
  ...process.env,
  DATABASE_URL: deps.databaseUrl,
  NATS_URL: deps.natsUrl,
  // `vitest`, `buf` etc. resolve as under `npm run` even when called directly.
  PATH: [path.join(repoRoot, "node_modules", ".bin"), process.env.PATH].join(path.delimiter),
};
const child = spawn(cmd, args, { stdio: "inherit", env });

// Ctrl-C reaches the child through the terminal's process group; our deps are
// in their own groups, so they outlive it until we stop them below.
const forward = (signal) => {
  if (child.exitCode === null) child.kill(signal);
};
process.on("SIGINT", forward);
process.on("SIGTERM", forward);
process.on("SIGHUP", forward);

const code = await new Promise((resolve) => {
  child.once("error", (err) => {
    log(`cannot run ${cmd}: ${err.message}`);
    resolve(127);
  });
  child.once("exit", (c, signal) => resolve(c ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
});
await deps.stop();
removeDataDir();
process.exit(code);
