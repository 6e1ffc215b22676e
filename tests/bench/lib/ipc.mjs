// Request/response over Node's IPC channel between the orchestrator (run.mjs)
// and the processes it forks: the load generator, the fake app and webhook
// receiver, and the peers' API and worker processes. 'advanced'
// serialization carries typed arrays of timings without JSON.
import { fork } from "node:child_process";
import fs from "node:fs";

/**
 * In a child: answers the parent's requests with `handlers[cmd](args)`, then
 * says `ready` with `info` (e.g. the port it listens on). The child exits when
 * the parent goes away, so a crashed benchmark leaves nothing behind.
 * @param {Record<string, (args: any) => any>} handlers
 * @param {unknown} [info]
 */
export function serve(handlers, info = {}) {
  if (!process.send) throw new Error("this script runs as a child of tests/bench/run.mjs");
  process.on("message", async (msg) => {
    const { id, cmd, args } = msg;
    try {
      const fn = handlers[cmd];
      if (!fn) throw new Error(`unknown command ${cmd}`);
      const result = await fn(args ?? {});
      process.send({ id, ok: true, result });
    } catch (err) {
      process.send({ id, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) });
    }
  });
  process.on("disconnect", () => process.exit(0));
  process.send({ ready: true, info });
}

/**
 * Forks `script` and resolves once it said ready.
 * @param {string} script
 * @param {{ args?: string[], env?: NodeJS.ProcessEnv, name?: string, readyTimeoutMs?: number, logFile?: string }} [options]
 *   `logFile`: where the child's stdout and stderr go (default: this process's)
 * @returns {Promise<{ pid: number, info: any, name: string, request(cmd: string, args?: unknown): Promise<any>, stop(): Promise<void> }>}
 */
export async function forkChild(script, { args = [], env = process.env, name = script, readyTimeoutMs = 30_000, logFile } = {}) {
  const fd = logFile ? fs.openSync(logFile, "a") : undefined;
  const out = fd ?? "inherit";
  const child = fork(script, args, { env, serialization: "advanced", stdio: ["ignore", out, out, "ipc"] });
  if (fd !== undefined) fs.closeSync(fd); // the child holds its own copy
  const pending = new Map();
  let nextId = 1;
  let exited = false;
  const exit = new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      exited = true;
      for (const p of pending.values()) p.reject(new Error(`${name} exited (code ${code}, signal ${signal})`));
      pending.clear();
      resolve();
    });
  });
  const info = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not say ready within ${readyTimeoutMs} ms`)), readyTimeoutMs);
    child.on("message", (msg) => {
      if (msg.ready) {
        clearTimeout(timer);
        resolve(msg.info);
        return;
      }
      const p = pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`${name}: ${msg.error}`));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before it was ready (code ${code}, signal ${signal})`));
    });
  });
  return {
    pid: child.pid,
    info,
    name,
    request(cmd, args) {
      if (exited) return Promise.reject(new Error(`${name} has exited`));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ id, cmd, args });
      });
    },
    async stop() {
      if (exited) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exit;
      clearTimeout(timer);
    },
  };
}
