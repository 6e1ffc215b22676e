#!/usr/bin/env node
// `npm start`: Postgres + NATS JetStream (DATABASE_URL / NATS_URL when they
// answer, else our own, kept in .longhaul/ between runs) and the four services
// on their default ports, logs in this terminal. `npm start -- --replicas N`
// runs N copies of the scheduler, invoker and notifier (copy i on the default
// ports + 10·i). A copy that dies is started again after a short back-off
// while the others keep serving, as a Kubernetes Deployment would. Ctrl-C
// sends SIGTERM to every service (invokers finish the calls they hold; the
// schedulers stop after them), then stops the dependencies we started; a
// second Ctrl-C kills everything at once.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { ensureDeps } from "./lib/deps.mjs";
import { createLineFormatter } from "./lib/log-format.mjs";
import { LOCAL_APP_NETWORKS, repoRoot, startMesh } from "./lib/mesh.mjs";
import { ensureNodeVersion } from "./lib/node-version.mjs";

ensureNodeVersion();

const env = process.env;
// LONGHAUL_STATE_DIR moves keys, logs and our own Postgres/NATS data elsewhere (the tests use it).
const stateDir = env.LONGHAUL_STATE_DIR ? path.resolve(env.LONGHAUL_STATE_DIR) : path.join(repoRoot, ".longhaul");
const log = (m) => console.error(`[longhaul] ${m}`);

const USAGE = `usage: npm start [-- --replicas N]
  --replicas N   copies of the scheduler, invoker and notifier (1-9, default 1);
                 copy i listens on the default ports + 10*i`;

/** The command line: `--replicas N` or `--replicas=N`, `--help`. */
function parseArgs(argv) {
  let replicas = 1;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    let value;
    if (a === "--help" || a === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else if (a === "--replicas") value = argv[++i];
    else if (a.startsWith("--replicas=")) value = a.slice("--replicas=".length);
    else throw new Error(`unknown argument ${a}\n${USAGE}`);
    replicas = Number(value);
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 9) {
      throw new Error(`--replicas ${value ?? ""}: a whole number from 1 to 9\n${USAGE}`);
    }
  }
  return { replicas };
}

/** Copies run with more than one: the gateway stays one (it holds port 8080). */
const REPLICATED = ["scheduler", "invoker", "notifier"];
/** Port spacing of the copies: copy i of a service is on its port + 10·i. */
const COPY_PORT_STEP = 10;
/** Back-offs before a dead copy is started again, growing with each failure in a row. */
const RESTART_BACKOFF_MS = [1_000, 2_000, 5_000, 10_000, 30_000];
/** A copy that ran this long counts as healthy: its next failure starts at the first back-off. */
const RESTART_STABLE_MS = 60_000;

/** Default ports (DESIGN.md "Ports and names"), each overridable by its variable. */
const PORTS = {
  LONGHAUL_HTTP_PORT: 8080,
  INGRESS_METRICS_PORT: 9460,
  SCHEDULER_GRPC_PORT: 50051,
  INVOKER_GRPC_PORT: 50052,
  NOTIFIER_GRPC_PORT: 50053,
  SCHEDULER_METRICS_PORT: 9461,
  INVOKER_METRICS_PORT: 9462,
  NOTIFIER_METRICS_PORT: 9463,
};

/** A path as the user reads it: relative inside the repository, absolute elsewhere. */
function shown(p) {
  const rel = path.relative(repoRoot, p);
  return rel.startsWith("..") ? p : rel;
}

/** A secret from env, else from .longhaul/<file>, else a new one saved there: restarts keep it. */
function keptSecret(varName, file, make) {
  if (env[varName]) return { value: env[varName], from: `$${varName}` };
  const p = path.join(stateDir, file);
  if (fs.existsSync(p)) {
    const value = fs.readFileSync(p, "utf8").trim();
    if (value) return { value, from: shown(p) };
  }
  const value = make();
  fs.writeFileSync(p, value + "\n", { mode: 0o600 });
  return { value, from: `${shown(p)} (new)` };
}

function portFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen({ host: "127.0.0.1", port }, () => server.close(() => resolve(true)));
  });
}

/** The service a port variable belongs to (SCHEDULER_GRPC_PORT → scheduler). */
const serviceOfPort = (portVar) => (portVar === "LONGHAUL_HTTP_PORT" ? "ingress" : portVar.split("_")[0].toLowerCase());

/** `gRPC 127.0.0.1:50051, metrics :9461` for a copy. */
function describePorts(p) {
  const parts = Object.entries(p.ports).map(([v, port]) =>
    v.endsWith("_METRICS_PORT") ? `metrics :${port}` : v === "LONGHAUL_HTTP_PORT" ? `HTTP 127.0.0.1:${port}` : `gRPC 127.0.0.1:${port}`,
  );
  return parts.join(", ");
}

async function main() {
  const { replicas } = parseArgs(process.argv.slice(2));
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
    const copies = REPLICATED.includes(serviceOfPort(name)) ? replicas : 1;
    for (let i = 0; i < copies; i++) {
      const p = port + COPY_PORT_STEP * i;
      if (p > 65535 || !(await portFree(p))) {
        throw new Error(
          `port ${p} (${name}${i ? ` + ${COPY_PORT_STEP * i}, copy ${i}` : ""}) is in use; stop what holds it or set ${name} to another port`,
        );
      }
    }
    ports[name] = String(port);
  }

  const apiKey = keptSecret("LONGHAUL_DEV_API_KEY", "dev-api-key", () => `lh_dev_${randomBytes(16).toString("hex")}`);
  const adminKey = keptSecret("LONGHAUL_ADMIN_KEY", "admin-key", () => `lh_admin_${randomBytes(32).toString("base64url")}`);
  const internalToken = keptSecret("LONGHAUL_INTERNAL_TOKEN", "internal-token", () => randomBytes(24).toString("hex"));
  log(
    `LONGHAUL_APP_ALLOWED_NETWORKS=${env.LONGHAUL_APP_ALLOWED_NETWORKS ?? LOCAL_APP_NETWORKS}` +
      (env.LONGHAUL_APP_ALLOWED_NETWORKS ? "" : ": apps may be on loopback and private addresses (local development only)"),
  );
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
  const restartTimers = new Set();
  /** Per copy (`name#index`): failures in a row, when it last came up, whether we are starting it. */
  const restarts = new Map();
  let startedAt = Date.now();
  const shutdown = async (reason, code) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log(
      `${reason}: stopping… (SIGTERM to every service; invokers finish the calls they hold, up to ` +
        `INVOKER_DRAIN_SECONDS, and the schedulers stop after them; Ctrl-C again kills everything at once)`,
    );
    for (const timer of restartTimers) clearTimeout(timer);
    startAbort.abort(); // when still starting, startMesh stops what it launched
    await meshStarting?.catch(() => {});
    // No deadline of our own: a draining invoker may hold calls for hours, and a second Ctrl-C is the way out.
    await mesh?.stop({ graceMs: Number.POSITIVE_INFINITY });
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
    if (++signals > 1) {
      log(`${signal} again: killing every service now`);
      process.exit(130);
    }
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
    portFor: (name, index, portVar) => Number(ports[portVar]) + COPY_PORT_STEP * index,
    services: Object.fromEntries(REPLICATED.map((name) => [name, replicas])),
    onExit: (name, index, { code, signal, expected }) => {
      // Only once running: a copy failing during start makes startMesh reject instead.
      if (!mesh || expected || shuttingDown || restarts.get(`${name}#${index}`)?.starting) return;
      scheduleRestart(name, index, `exited unexpectedly (code ${code}, signal ${signal})`);
    },
  });

  /** Starts a dead copy again after a back-off, as a Deployment's ReplicaSet would; the others keep serving. */
  function scheduleRestart(name, index, why) {
    const key = `${name}#${index}`;
    const r = restarts.get(key) ?? { failures: 0, upSince: startedAt, starting: false };
    restarts.set(key, r);
    if (Date.now() - r.upSince >= RESTART_STABLE_MS) r.failures = 0;
    const delay = RESTART_BACKOFF_MS[Math.min(r.failures, RESTART_BACKOFF_MS.length - 1)];
    r.failures++;
    const others = mesh.processes.filter((p) => p.alive).length;
    log(`${key} ${why}; starting it again in ${delay / 1000} s (${others} other processes keep serving)`);
    const timer = setTimeout(async () => {
      restartTimers.delete(timer);
      if (shuttingDown) return;
      r.starting = true;
      try {
        await mesh.start(name, index);
        r.upSince = Date.now();
        const p = mesh.processes.find((x) => x.name === name && x.index === index);
        log(`${key} started again: pid ${p.pid}, ${describePorts(p)}`);
      } catch (err) {
        if (!shuttingDown) scheduleRestart(name, index, `did not start again (${String(err.message).split("\n")[0]})`);
      } finally {
        r.starting = false;
      }
    }, delay);
    restartTimers.add(timer);
  }

  try {
    mesh = await meshStarting;
    startedAt = Date.now();
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
    `  gateway      ${gw}   (dashboard ${gw}/dashboard, metrics ${mesh.metricsUrls.ingress[0]})`,
    `  scheduler    ${mesh.addresses.scheduler}   gRPC: longhaul.v1.RunService, longhaul.v1.AppService (metrics ${mesh.metricsUrls.scheduler[0]})`,
    `  invoker      ${mesh.addresses.invoker}   gRPC, internal (metrics ${mesh.metricsUrls.invoker[0]})`,
    `  notifier     ${mesh.addresses.notifier}   gRPC, internal (metrics ${mesh.metricsUrls.notifier[0]})`,
    `  postgres     ${deps.databaseUrl}${deps.started.postgres ? `   (ours, data in ${shown(path.join(stateDir, "pg"))})` : ""}`,
    `  nats         ${deps.natsUrl}${deps.started.nats ? `   (ours, JetStream store in ${shown(path.join(stateDir, "nats"))})` : ""}`,
    `  logs         ${shown(logDir)}/<service>-<copy>.log`,
    "",
    "Processes (a copy that dies is started again after a short back-off):",
    ...mesh.processes.map((p) => `  ${`${p.name}#${p.index}`.padEnd(12)} pid ${String(p.pid).padEnd(8)} ${describePorts(p)}`),
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
    "Ctrl-C stops everything (invokers first finish the calls they hold); Ctrl-C twice stops at once.",
    "",
  ];
  process.stdout.write(banner.join("\n") + "\n");
}

main().catch(async (err) => {
  log(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
