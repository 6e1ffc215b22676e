// Starts the four Longhaul services as real processes wired to each other:
// used by `npm start` (scripts/start.mjs) and by the end-to-end tests
// (tests/helpers/mesh.ts). Types: mesh.d.mts beside this file.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { freePort } from "./net.mjs";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export const SERVICE_NAMES = ["scheduler", "invoker", "notifier", "ingress"];

/** Port variables of each service (docs/ARCHITECTURE.md). */
export const PORT_VARS = {
  scheduler: ["SCHEDULER_GRPC_PORT", "SCHEDULER_METRICS_PORT"],
  invoker: ["INVOKER_GRPC_PORT", "INVOKER_METRICS_PORT"],
  notifier: ["NOTIFIER_GRPC_PORT", "NOTIFIER_METRICS_PORT"],
  ingress: ["LONGHAUL_HTTP_PORT", "INGRESS_METRICS_PORT"],
};

/** Start order: each tier waits for the one before. */
const TIERS = [["scheduler"], ["invoker", "notifier"], ["ingress"]];
/**
 * Stop order: everything but the schedulers at once, then the schedulers, which
 * draining invokers still report their calls' outcomes to.
 */
const STOP_TIERS = [["ingress", "invoker", "notifier"], ["scheduler"]];
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;
const LAST_LINES = 40;
/** LONGHAUL_APP_ALLOWED_NETWORKS of a local mesh: the private ranges and loopback. */
export const LOCAL_APP_NETWORKS = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7,127.0.0.0/8,::1/128";

/** True for the pino line a service logs once it serves. */
function isReadyLine(line) {
  if (!line.includes('"ready"')) return false;
  try {
    return JSON.parse(line).msg === "ready";
  } catch {
    return false;
  }
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Free ports, none handed out twice within one mesh. */
function portPicker() {
  const used = new Set();
  return async (given) => {
    if (given !== undefined && given !== "") {
      used.add(Number(given));
      return Number(given);
    }
    for (;;) {
      const p = await freePort();
      if (!used.has(p)) {
        used.add(p);
        return p;
      }
    }
  };
}

/**
 * Starts a mesh; see mesh.d.mts for the options and the handle. Throws (after
 * stopping whatever it started) when a copy does not log ready within 30 s,
 * with that copy's last 40 log lines in the message.
 */
export async function startMesh(options) {
  const {
    databaseUrl,
    natsUrl,
    natsPrefix,
    env: extraEnv = {},
    services: counts = {},
    serviceEnv = {},
    stdio = "pipe",
    readyTimeoutMs = READY_TIMEOUT_MS,
    entry = (name) => path.join(repoRoot, "services", name, "dist", "main.js"),
    migrate = path.join(repoRoot, "services", "migrate", "dist", "main.js"),
    nodeArgs = ["--import", "@longhaul/shared/otel-register"],
    formatLine = (name, index, line) => `[${name}#${index}] ${line}`,
    portFor,
    onExit,
    signal,
  } = options;
  if (!databaseUrl || !natsUrl) throw new Error("startMesh needs databaseUrl and natsUrl");
  const logDir = options.logDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "longhaul-mesh-"));
  fs.mkdirSync(logDir, { recursive: true });

  const internalToken = extraEnv.LONGHAUL_INTERNAL_TOKEN ?? randomBytes(24).toString("hex");
  const apiKey = extraEnv.LONGHAUL_DEV_API_KEY ?? `lh_dev_${randomBytes(16).toString("hex")}`;
  const adminKey = extraEnv.LONGHAUL_ADMIN_KEY ?? `lh_admin_${randomBytes(24).toString("base64url")}`;

  // Every port first, so that each service learns the others' addresses.
  const pick = portPicker();
  const copies = [];
  for (const name of SERVICE_NAMES) {
    const n = counts[name] ?? 1;
    for (let index = 0; index < n; index++) {
      const ports = {};
      for (const v of PORT_VARS[name]) {
        // A port given in env/serviceEnv applies to the first copy; others get
        // portFor's, else free ones.
        ports[v] = await pick(index === 0 ? (serviceEnv[name]?.[v] ?? extraEnv[v]) : portFor?.(name, index, v));
      }
      copies.push({ name, index, ports, logFile: path.join(logDir, `${name}-${index}.log`) });
    }
  }
  const first = (name) => copies.find((c) => c.name === name);
  // Every copy's address, comma-separated: clients spread their calls over them (round-robin).
  const grpcAddr = async (name, v) => {
    const given = extraEnv[`${name.toUpperCase()}_ADDR`];
    if (given !== undefined) return given;
    const ports = copies.filter((c) => c.name === name).map((c) => c.ports[v]);
    if (ports.length === 0) ports.push(await pick());
    return ports.map((p) => `127.0.0.1:${p}`).join(",");
  };
  const addresses = {
    scheduler: await grpcAddr("scheduler", "SCHEDULER_GRPC_PORT"),
    invoker: await grpcAddr("invoker", "INVOKER_GRPC_PORT"),
    notifier: await grpcAddr("notifier", "NOTIFIER_GRPC_PORT"),
  };
  const ingress = first("ingress");
  const ingressUrl = ingress ? `http://127.0.0.1:${ingress.ports.LONGHAUL_HTTP_PORT}` : undefined;
  const metricsUrls = Object.fromEntries(
    SERVICE_NAMES.map((name) => [
      name,
      copies
        .filter((c) => c.name === name)
        .map((c) => `http://127.0.0.1:${c.ports[PORT_VARS[name][1]]}/metrics`),
    ]),
  );

  const baseEnv = {
    DATABASE_URL: databaseUrl,
    NATS_URL: natsUrl,
    ...(natsPrefix ? { LONGHAUL_NATS_PREFIX: natsPrefix } : {}),
    LONGHAUL_INTERNAL_TOKEN: internalToken,
    LONGHAUL_DEV_API_KEY: apiKey,
    LONGHAUL_ADMIN_KEY: adminKey,
    // Apps of a local mesh (tests, npm start) listen on loopback: allowed here, beside the private ranges.
    LONGHAUL_APP_ALLOWED_NETWORKS: extraEnv.LONGHAUL_APP_ALLOWED_NETWORKS ?? process.env.LONGHAUL_APP_ALLOWED_NETWORKS ?? LOCAL_APP_NETWORKS,
    // Every port of the mesh, so that none can be an app.
    LONGHAUL_MESH_ADDRESSES: copies.flatMap((c) => Object.values(c.ports).map((p) => `127.0.0.1:${p}`)).join(","),
    SCHEDULER_ADDR: addresses.scheduler,
    INVOKER_ADDR: addresses.invoker,
    NOTIFIER_ADDR: addresses.notifier,
    ...(ingressUrl ? { LONGHAUL_PUBLIC_URL: ingressUrl } : {}),
  };
  for (const c of copies) {
    c.env = {
      ...process.env,
      ...baseEnv,
      OTEL_SERVICE_NAME: `longhaul-${c.name}`,
      LONGHAUL_INSTANCE_ID: `${c.name}-${c.index}`,
      // Loopback only (the services default to 0.0.0.0); `env` may say otherwise.
      ...Object.fromEntries(PORT_VARS[c.name].map((v) => [v.replace(/_PORT$/, "_HOST"), "127.0.0.1"])),
      ...extraEnv,
      ...serviceEnv[c.name],
      ...Object.fromEntries(Object.entries(c.ports).map(([k, v]) => [k, String(v)])),
    };
    c.entry = entry(c.name);
    c.child = undefined;
    c.closed = Promise.resolve();
  }

  // Aborting (Ctrl-C during `npm start`) ends the wait for readiness; the
  // catch below then stops every copy launched so far.
  const aborted = new Promise((_, reject) => {
    const onAbort = () => reject(new Error("start aborted"));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
  });
  aborted.catch(() => {});

  /** Runs the migrate command on the mesh's database; rejects with its output when it fails. */
  async function runMigrate() {
    if (!fs.existsSync(migrate)) throw new Error(`${migrate} is missing: run \`npm run build\` first`);
    const logFile = path.join(logDir, "migrate.log");
    const child = spawn(process.execPath, [migrate], {
      cwd: repoRoot,
      env: { ...process.env, ...baseEnv, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines = [];
    const onLine = (line) => {
      lines.push(line);
      fs.appendFileSync(logFile, line + "\n");
      if (stdio === "inherit") process.stdout.write(formatLine("migrate", 0, line) + "\n");
    };
    readline.createInterface({ input: child.stdout, crlfDelay: Infinity }).on("line", onLine);
    readline.createInterface({ input: child.stderr, crlfDelay: Infinity }).on("line", onLine);
    const onAbort = () => child.kill("SIGTERM");
    signal?.addEventListener("abort", onAbort, { once: true });
    const { code, sig } = await new Promise((resolve) => {
      child.once("error", (err) => {
        onLine(`[mesh] cannot spawn: ${err.message}`);
        resolve({ code: null, sig: null });
      });
      child.once("close", (c, s) => resolve({ code: c, sig: s }));
    });
    signal?.removeEventListener("abort", onAbort);
    if (code !== 0) {
      throw new Error(`migrate exited with code ${code}, signal ${sig}\n--- ${logFile} ---\n${lines.slice(-LAST_LINES).join("\n")}`);
    }
  }

  /** Spawns one copy and resolves once it logged ready. */
  function launch(c) {
    c.expectExit = false;
    if (!fs.existsSync(c.entry)) {
      return Promise.reject(new Error(`${c.entry} is missing: run \`npm run build\` first`));
    }
    let fd = fs.openSync(c.logFile, "a");
    const closeLog = () => {
      if (fd !== undefined) fs.closeSync(fd);
      fd = undefined; // never write to a number the OS may have handed to another file
    };
    const child = spawn(process.execPath, [...nodeArgs, c.entry], {
      cwd: repoRoot,
      env: c.env,
      detached: true, // own process group: kill() reaches anything it spawns, Ctrl-C does not
      stdio: ["ignore", "pipe", "pipe"],
    });
    c.child = child;
    c.recent = [];
    let ready = false;
    let onReady;
    const readyLine = new Promise((resolve) => (onReady = resolve));
    const onLine = (line) => {
      if (fd !== undefined) fs.writeSync(fd, line + "\n"); // synchronous, so logs() is always current
      c.recent.push(line);
      if (c.recent.length > LAST_LINES) c.recent.shift();
      if (stdio === "inherit") process.stdout.write(formatLine(c.name, c.index, line) + "\n");
      if (!ready && isReadyLine(line)) {
        ready = true;
        onReady();
      }
    };
    readline.createInterface({ input: child.stdout, crlfDelay: Infinity }).on("line", onLine);
    readline.createInterface({ input: child.stderr, crlfDelay: Infinity }).on("line", onLine);
    c.closed = new Promise((resolve) => {
      child.once("error", (err) => {
        onLine(`[mesh] cannot spawn: ${err.message}`);
        closeLog();
        resolve({ code: null, signal: null });
      });
      // 'close' comes after the pipes drained, so the last lines are in the log.
      child.once("close", (code, signal) => {
        closeLog();
        if (stdio === "inherit") {
          process.stdout.write(formatLine(c.name, c.index, `[mesh] exited (code ${code}, signal ${signal})`) + "\n");
        }
        resolve({ code, signal });
        onExit?.(c.name, c.index, { code, signal, expected: c.expectExit === true || stopping !== undefined });
      });
    });
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`did not log {"msg":"ready"} within ${readyTimeoutMs} ms`)),
        readyTimeoutMs,
      );
    });
    const died = c.closed.then(({ code, signal }) => {
      throw new Error(`exited before it was ready (code ${code}, signal ${signal})`);
    });
    return Promise.race([readyLine, timeout, died, aborted])
      .catch(async (err) => {
        c.expectExit = true;
        await terminate(c, signal?.aborted ? "SIGTERM" : "SIGKILL");
        throw new Error(
          `${c.name}#${c.index} ${err.message}\n--- last ${LAST_LINES} lines of ${c.logFile} ---\n${c.recent.join("\n")}`,
        );
      })
      .finally(() => clearTimeout(timer));
  }

  function alive(c) {
    return c.child !== undefined && c.child.exitCode === null && c.child.signalCode === null;
  }

  /**
   * Signals a copy's process group; SIGKILL after the grace period (never when
   * it is Infinity); resolves once it is gone.
   */
  async function terminate(c, signal, graceMs = STOP_GRACE_MS) {
    if (!c.child) return { code: null, signal: null };
    if (alive(c)) killGroup(c.child.pid, signal);
    const child = c.child;
    const timer = Number.isFinite(graceMs) ? setTimeout(() => killGroup(child.pid, "SIGKILL"), graceMs) : undefined;
    const result = await c.closed;
    clearTimeout(timer);
    return result;
  }

  const killAllOnExit = () => {
    for (const c of copies) if (alive(c)) killGroup(c.child.pid, "SIGKILL");
  };
  // Prepended: on exit the services die before any dependency's exit hook stops Postgres or NATS.
  process.prependListener("exit", killAllOnExit);

  let stopping;
  async function stop({ graceMs = STOP_GRACE_MS } = {}) {
    stopping ??= (async () => {
      for (const tier of STOP_TIERS) {
        await Promise.all(copies.filter((c) => tier.includes(c.name)).map((c) => terminate(c, "SIGTERM", graceMs)));
      }
      process.off("exit", killAllOnExit);
    })();
    return stopping;
  }

  try {
    // Migrations are a step before the services, as the Kubernetes Job is; the services wait for them.
    if (migrate) await runMigrate();
    for (const tier of TIERS) {
      if (signal?.aborted) throw new Error("start aborted");
      await Promise.all(copies.filter((c) => tier.includes(c.name)).map(launch));
    }
  } catch (err) {
    await stop();
    throw err;
  }

  const find = (name, index) => {
    const c = copies.find((x) => x.name === name && x.index === index);
    if (!c) throw new Error(`no copy ${name}#${index} in this mesh`);
    return c;
  };

  return {
    ingressUrl,
    apiKey,
    adminKey,
    internalToken,
    addresses,
    metricsUrls,
    logDir,
    env: baseEnv,
    get processes() {
      return copies.map((c) => ({
        name: c.name,
        index: c.index,
        pid: c.child?.pid,
        alive: alive(c),
        logFile: c.logFile,
        ports: { ...c.ports },
      }));
    },
    kill(name, index = 0, signal = "SIGTERM", graceMs = STOP_GRACE_MS) {
      const c = find(name, index);
      c.expectExit = true;
      return terminate(c, signal, graceMs);
    },
    async start(name, index = 0) {
      const c = find(name, index);
      if (alive(c)) throw new Error(`${name}#${index} is still running`);
      c.expectExit = false;
      await launch(c);
    },
    stop,
    logs(name, index = 0) {
      const c = find(name, index);
      return fs.existsSync(c.logFile) ? fs.readFileSync(c.logFile, "utf8") : "";
    },
  };
}
