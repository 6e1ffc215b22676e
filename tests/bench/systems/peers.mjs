// The two builds a user would pick instead of Longhaul: pg-boss and
// graphile-worker, each as an API process and a worker process (the same
// split as Longhaul's ingress and invoker), on a database of their own on the
// same Postgres. Tuning is in PGBOSS_SETTINGS / GRAPHILE_SETTINGS and
// explained in tests/bench/README.md; the aim is each one's best showing.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { forkChild } from "../lib/ipc.mjs";
import { API_KEY } from "./peer-common.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

/** pg-boss 12: LISTEN/NOTIFY on (`useListenNotify` + queue `notify`), batched fetch, burst while batches come back full. */
export const PGBOSS_SETTINGS = {
  poolSize: 20,
  batchSize: 20,
  localConcurrency: 2,
  pollingIntervalSeconds: 0.5,
};

/** graphile-worker 0.18: LISTEN/NOTIFY is built in; local queue and batched completion as its performance guide advises. */
export const GRAPHILE_SETTINGS = {
  apiPoolSize: 20,
  poolSize: 26,
  concurrency: 24,
  pollInterval: 2000,
  localQueueSize: 25,
  completeJobBatchDelay: 0,
};

/**
 * Settings for the long-call scenario (2,000 runs held 60 s): each peer's
 * concurrency raised to the number of calls, as its users would. graphile-
 * worker: `concurrency` = N, its local queue one more (its guide's rule);
 * the pool stays (a running job holds no connection). Both: the HTTP agent
 * may open that many sockets to the app (512 otherwise). pg-boss: N slots as
 * batches of 20 on N/20 fetch loops (one loop of N would take only what is
 * there at each fetch and then wait for the whole batch).
 */
export const LONG_CALL_SETTINGS = {
  pgboss: (n) => ({ batchSize: 20, localConcurrency: Math.max(1, Math.ceil(n / 20)), httpSockets: n + 64 }),
  graphile: (n) => ({ concurrency: n, localQueueSize: n + 1, httpSockets: n + 64 }),
};

/**
 * @param {object} o
 * @param {string} o.overrideVar  env variable whose JSON object overrides settings (to try other tunings)
 */
function peerSystem({ name, label, script, settings: defaults, overrideVar, extra = {} }) {
  return {
    name,
    label,
    kind: "job",
    async start(ctx) {
      const settings = {
        ...defaults,
        ...JSON.parse(process.env[overrideVar] || "{}"),
        ...(ctx.longCalls ? LONG_CALL_SETTINGS[name](ctx.longCalls) : {}),
      };
      const db = await ctx.pg.createDatabase(name);
      const logName = ctx.longCalls ? `${name}-long-calls` : name;
      const env = {
        ...process.env,
        BENCH_PEER_SETTINGS: JSON.stringify({ connectionString: db.url, appUrl: ctx.appUrl, settings, ...extra }),
      };
      const file = path.join(here, script);
      // The API first: it installs the schema (and the queue) the worker needs.
      const api = await forkChild(file, { args: ["api"], env, name: `${name}-api`, logFile: path.join(ctx.logDir, `${logName}-api.log`) });
      let worker;
      try {
        worker = await forkChild(file, { args: ["worker"], env, name: `${name}-worker`, logFile: path.join(ctx.logDir, `${logName}-worker.log`) });
      } catch (err) {
        await api.stop();
        throw err;
      }
      const hook = encodeURIComponent(ctx.hookUrl);
      return {
        target: {
          kind: "http",
          url: `http://127.0.0.1:${api.info.port}/bench/predict?webhookEndpoint=${hook}`,
          headers: { authorization: `Bearer ${API_KEY}` },
        },
        targetNoWebhook: {
          kind: "http",
          url: `http://127.0.0.1:${api.info.port}/bench/predict`,
          headers: { authorization: `Bearer ${API_KEY}` },
        },
        processes: [
          { name: "api", pid: api.pid },
          { name: "worker", pid: worker.pid },
        ],
        databases: { [name]: db.name },
        dispatch: "app",
        processed: "hooks",
        settings,
        async stop() {
          await api.stop();
          await worker.stop();
        },
      };
    },
  };
}

/** @type {import("./types.mjs").SystemSpec} */
export const pgboss = peerSystem({
  name: "pgboss",
  label: "pg-boss",
  script: "pgboss-peer.mjs",
  settings: PGBOSS_SETTINGS,
  overrideVar: "BENCH_PGBOSS_SETTINGS",
  extra: { queue: "runs" },
});

/** @type {import("./types.mjs").SystemSpec} */
export const graphile = peerSystem({
  name: "graphile",
  label: "graphile-worker",
  script: "graphile-peer.mjs",
  settings: GRAPHILE_SETTINGS,
  overrideVar: "BENCH_GRAPHILE_SETTINGS",
});
