// A 3-node JetStream cluster on loopback for the chaos run: three nats-server
// processes, each with its own store, clustered by routes (NATS docs,
// "JetStream Clustering": server_name, cluster.name and routes on every node).
// Nodes can be killed with -9 and started again on the same ports and store.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ensureNatsServerBinary, checkJetStream } from "../../scripts/lib/nats.mjs";
import { freePort, waitForTcp } from "../../scripts/lib/net.mjs";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";

const NODES = 3;
const READY_MS = 60_000;

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Resolves once JetStream answers through `url` (the meta leader is elected), else throws after `timeoutMs`. */
async function waitForJetStream(url, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await checkJetStream(url, 2_000);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`JetStream did not answer at ${url} within ${timeoutMs} ms: ${err.message}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * Resolves once a 3-replica stream can be created (every node has joined the
 * meta group): JetStream may answer account info before that, and a stream
 * created meanwhile times out.
 */
async function waitForReplicas(url, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  const nc = await connect({ servers: url.split(","), timeout: 5_000 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5_000 });
    for (;;) {
      try {
        await jsm.streams.add({ name: "CHAOS_PROBE", subjects: ["chaos.probe"], num_replicas: NODES });
        await jsm.streams.delete("CHAOS_PROBE");
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`no ${NODES}-replica stream could be created within ${timeoutMs} ms: ${err.message}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  } finally {
    await nc.close();
  }
}

/**
 * Starts three clustered nats-server nodes under `dir`.
 *
 * @param {{ dir: string, log: (m: string) => void }} options
 * @returns {Promise<{ url: string, nodes: {name: string, url: string, logFile: string, pid: () => number | undefined}[],
 *   kill(i: number): Promise<void>, start(i: number): Promise<void>, stop(): Promise<void> }>}
 */
export async function startNatsCluster({ dir, log }) {
  const bin = ensureNatsServerBinary(log);
  fs.mkdirSync(dir, { recursive: true });
  const used = new Set();
  const port = async () => {
    for (;;) {
      const p = await freePort();
      if (!used.has(p)) {
        used.add(p);
        return p;
      }
    }
  };
  const nodes = [];
  for (let i = 0; i < NODES; i++) nodes.push({ name: `chaos-n${i + 1}`, client: await port(), route: await port() });
  const routes = nodes.map((n) => `"nats-route://127.0.0.1:${n.route}"`).join(", ");
  for (const n of nodes) {
    n.store = path.join(dir, n.name);
    n.config = path.join(dir, `${n.name}.conf`);
    n.logFile = path.join(dir, `${n.name}.log`);
    n.url = `nats://127.0.0.1:${n.client}`;
    fs.writeFileSync(
      n.config,
      [
        `server_name: "${n.name}"`,
        `listen: "127.0.0.1:${n.client}"`,
        `jetstream { store_dir: "${n.store}" }`,
        `cluster { name: "chaos", listen: "127.0.0.1:${n.route}", routes: [${routes}] }`,
        "",
      ].join("\n"),
    );
  }

  function launch(n) {
    const out = fs.openSync(n.logFile, "a");
    const child = spawn(bin, ["-c", n.config], { detached: true, stdio: ["ignore", out, out] });
    fs.closeSync(out);
    n.child = child;
    n.exited = new Promise((resolve) => {
      child.once("exit", resolve);
      child.once("error", resolve);
    });
    let gone = false;
    void n.exited.then(() => (gone = true));
    return waitForTcp("127.0.0.1", n.client, { timeoutMs: READY_MS, what: n.name, alive: () => !gone });
  }

  const killAllOnExit = () => {
    for (const n of nodes) if (n.child && n.child.exitCode === null && n.child.signalCode === null) killGroup(n.child.pid, "SIGKILL");
  };
  process.on("exit", killAllOnExit);

  const handle = {
    url: nodes.map((n) => n.url).join(","),
    nodes: nodes.map((n) => ({ name: n.name, url: n.url, logFile: n.logFile, pid: () => n.child?.pid })),
    /** kill -9 of node i; resolves once it is gone. */
    async kill(i) {
      const n = nodes[i];
      killGroup(n.child.pid, "SIGKILL");
      await n.exited;
    },
    /** Starts node i again on its ports and store; resolves once JetStream answers through it. */
    async start(i) {
      const n = nodes[i];
      await launch(n);
      await waitForJetStream(n.url, READY_MS);
    },
    /** SIGTERM to every node (SIGKILL after 10 s); resolves once all are gone. */
    async stop() {
      await Promise.all(
        nodes.map(async (n) => {
          if (!n.child || n.child.exitCode !== null || n.child.signalCode !== null) return;
          killGroup(n.child.pid, "SIGTERM");
          const timer = setTimeout(() => killGroup(n.child.pid, "SIGKILL"), 10_000);
          await n.exited;
          clearTimeout(timer);
        }),
      );
      process.off("exit", killAllOnExit);
    },
  };
  try {
    await Promise.all(nodes.map(launch));
    await waitForJetStream(handle.url, READY_MS);
    await waitForReplicas(handle.url, READY_MS);
  } catch (err) {
    await handle.stop();
    const tails = nodes.map((n) => `--- ${n.logFile} ---\n${tail(n.logFile)}`).join("\n");
    throw new Error(`NATS cluster did not start: ${err.message}\n${tails}`);
  }
  return handle;
}

function tail(file, lines = 15) {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
