#!/usr/bin/env node
// `npm start`: Postgres + NATS JetStream (DATABASE_URL / NATS_URL when they
// answer, else our own, kept in .longhaul/ between runs) and the four services
// on their default ports, logs in this terminal. Ctrl-C stops all of it:
// the services first, then the dependencies we started.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { ensureDeps } from "./lib/deps.mjs";
import { createLineFormatter } from "./lib/log-format.mjs";
import { repoRoot, startMesh } from "./lib/mesh.mjs";
import { ensureNodeVersion } from "./lib/node-version.mjs";

ensureNodeVersion();

const env = process.env;
const stateDir = path.join(repoRoot, ".longhaul");
const log = (m) => console.error(`[longhaul] ${m}`);

/** Default ports (DESIGN.md "Ports and names"), each overridable by its variable. */
const PORTS = {
  LONGHAUL_HTTP_PORT: 8080,
  SCHEDULER_GRPC_PORT: 50051,
  INVOKER_GRPC_PORT: 50052,
  NOTIFIER_GRPC_PORT: 50053,
  SCHEDULER_METRICS_PORT: 9461,
  INVOKER_METRICS_PORT: 9462,
  NOTIFIER_METRICS_PORT: 9463,
};

/** A secret from env, else from .longhaul/<file>, else a new one saved there: restarts keep it. */
function keptSecret(varName, file, make) {
  if (env[varName]) return { value: env[varName], from: `$${varName}` };
  const p = path.join(stateDir, file);
  if (fs.existsSync(p)) {
    const value = fs.readFileSync(p, "utf8").trim();
    if (value) return { value, from: path.relative(repoRoot, p) };
  }
  const value = make();
  fs.writeFileSync(p, value + "\n", { mode: 0o600 });
  return { value, from: `${path.relative(repoRoot, p)} (new)` };
}

function portFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen({ host: "127.0.0.1", port }, () => server.close(() => resolve(true)));
  });
}

async function main() {
  // With the terminal or a pipe reader gone, writes fail with EPIPE; the log
  // files still have every line, and shutdown must go on.
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o755 });

  const ports = {};
  for (const [name, def] of Object.entries(PORTS)) {
    const raw = env[name] ?? String(def);
    const port = Number(raw);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${name}=${raw} is not a port`);
    if (!(await portFree(port))) {
      throw new Error(`port ${port} (${name}) is in use; stop what holds it or set ${name} to another port`);
    }
    ports[name] = String(port);
  }

  const apiKey = keptSecret("LONGHAUL_DEV_API_KEY", "dev-api-key", () => `lh_dev_${randomBytes(16).toString("hex")}`);
  const adminKey = keptSecret("LONGHAUL_ADMIN_KEY", "admin-key", () => `lh_admin_${randomBytes(32).toString("base64url")}`);
  const internalToken = keptSecret("LONGHAUL_INTERNAL_TOKEN", "internal-token", () => randomBytes(24).toString("hex"));
  const allowPrivate = env.LONGHAUL_WEBHOOK_ALLOW_PRIVATE ?? "true";
  log(
    `LONGHAUL_WEBHOOK_ALLOW_PRIVATE=${allowPrivate}` +
      (allowPrivate === "true" ? ": webhooks may target loopback and private addresses (local development only)" : ""),
  );

  // Signals are handled from here on, so that a Ctrl-C at any moment stops
  // what was started so far: services first, then the deps.
  let shuttingDown = false;
  let deps;
  let depsStarting;
  let mesh;
  let meshStarting;
  const startAbort = new AbortController();
  const shutdown = async (reason, code) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log(`${reason}: stopping…`);
    startAbort.abort(); // when still starting, startMesh stops what it launched
    await meshStarting?.catch(() => {});
    await mesh?.stop();
    // ensureDeps cannot be cut short; it stops what it started if it fails.
    deps ??= await depsStarting?.catch(() => undefined);
    if (deps?.started.postgres || deps?.started.nats) log("stopping the Postgres / NATS we started…");
    await deps?.stop();
    log("stopped");
    process.exit(code);
  };
  let signals = 0;
  const onSignal = (signal) => {
    // A second Ctrl-C: stop waiting. The exit hooks SIGKILL the services and stop the deps.
    if (++signals > 1) process.exit(130);
    void shutdown(signal, 0);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // The terminal went away (closed tab, tmux pane): stop cleanly rather than die mid-way.
  process.on("SIGHUP", onSignal);

  depsStarting = ensureDeps({ dataDir: stateDir, log, handleSignals: false });
  deps = await depsStarting;
  if (shuttingDown) return;

  // Logs of this run only; the previous run's are kept once as *.log.1.
  const logDir = path.join(stateDir, "logs");
  fs.mkdirSync(logDir, { recursive: true });
  for (const f of fs.readdirSync(logDir).filter((f) => f.endsWith(".log"))) {
    fs.renameSync(path.join(logDir, f), path.join(logDir, `${f}.1`));
  }

  meshStarting = startMesh({
    databaseUrl: deps.databaseUrl,
    natsUrl: deps.natsUrl,
    env: {
      ...ports,
      LONGHAUL_DEV_API_KEY: apiKey.value,
      LONGHAUL_ADMIN_KEY: adminKey.value,
      LONGHAUL_INTERNAL_TOKEN: internalToken.value,
      LONGHAUL_WEBHOOK_ALLOW_PRIVATE: allowPrivate,
    },
    logDir,
    stdio: "inherit",
    formatLine: createLineFormatter(),
    signal: startAbort.signal,
    // A first start on a busy laptop (cold caches, tsc just ran) can be slow.
    readyTimeoutMs: 120_000,
    onExit: (name, index, { code, signal, expected }) => {
      // Only once running: a copy failing during start makes startMesh reject instead.
      if (mesh && !expected) void shutdown(`${name}#${index} exited unexpectedly (code ${code}, signal ${signal})`, 1);
    },
  });
  try {
    mesh = await meshStarting;
  } catch (err) {
    if (shuttingDown) return; // Ctrl-C during start: shutdown() finishes the job
    log(err.message);
    await deps.stop();
    process.exit(1);
  }

  const gw = mesh.ingressUrl;
  const banner = [
    "",
    "Longhaul is running.",
    `  gateway      ${gw}   (dashboard ${gw}/dashboard, metrics ${gw}/metrics)`,
    `  scheduler    ${mesh.addresses.scheduler}   gRPC: longhaul.v1.RunService, longhaul.v1.AppService (metrics ${mesh.metricsUrls.scheduler[0]})`,
    `  invoker      ${mesh.addresses.invoker}   gRPC, internal (metrics ${mesh.metricsUrls.invoker[0]})`,
    `  notifier     ${mesh.addresses.notifier}   gRPC, internal (metrics ${mesh.metricsUrls.notifier[0]})`,
    `  postgres     ${deps.databaseUrl}${deps.started.postgres ? "   (ours, data in .longhaul/pg)" : ""}`,
    `  nats         ${deps.natsUrl}${deps.started.nats ? "   (ours, JetStream store in .longhaul/nats)" : ""}`,
    `  logs         ${path.relative(repoRoot, logDir)}/<service>-0.log`,
    "",
    `  dev API key  ${mesh.apiKey}   (project "dev"; from ${apiKey.from})`,
    `  admin key    ${mesh.adminKey}   (the operator's: /v1/admin/..., the dashboard's operator view; from ${adminKey.from})`,
    "",
    "Try it (with any HTTP app listening on 127.0.0.1:9000):",
    `  export LONGHAUL_KEY=${mesh.apiKey}`,
    `  curl -X PUT ${gw}/v1/apps/myapp -H "Authorization: Bearer $LONGHAUL_KEY" \\`,
    `       -H 'content-type: application/json' -d '{"url":"http://127.0.0.1:9000"}'`,
    `  curl -X POST "${gw}/dev/myapp/some/path?async=true" -H "Authorization: Bearer $LONGHAUL_KEY" -d 'hello'`,
    `  curl "${gw}/v1/runs/<run_id>?wait=30" -H "Authorization: Bearer $LONGHAUL_KEY"`,
    `  curl "${gw}/v1/runs/<run_id>/result" -H "Authorization: Bearer $LONGHAUL_KEY"`,
    "",
    "Ctrl-C stops everything.",
    "",
  ];
  process.stdout.write(banner.join("\n") + "\n");
}

main().catch(async (err) => {
  log(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
