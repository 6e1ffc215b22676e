// The graphile-worker build of "async requests" (forked by graphile.mjs), one
// role per process: `api` (the submit endpoint: addJob() then 202 with the
// job id) or `worker` (run(): call the app, POST the webhook). Settings come
// as JSON in BENCH_PEER_SETTINGS and are documented in tests/bench/README.md.
import pg from "pg";
import { makeWorkerUtils, run } from "graphile-worker";
import { serve } from "../lib/ipc.mjs";
import { runJob, startApi } from "./peer-common.mjs";

const role = process.argv[2];
const { connectionString, appUrl, settings } = JSON.parse(process.env.BENCH_PEER_SETTINGS ?? "{}");

const pgPool = new pg.Pool({ connectionString, max: role === "api" ? settings.apiPoolSize : settings.poolSize });
pgPool.on("error", (err) => console.error(`[graphile ${role}] pool`, err.message));
pgPool.on("connect", (client) => client.on("error", (err) => console.error(`[graphile ${role}] client`, err.message)));

let info = {};
let stop;
if (role === "api") {
  const utils = await makeWorkerUtils({ pgPool });
  await utils.migrate();
  const port = await startApi(async (job) => (await utils.addJob("call_app", job, { maxAttempts: 3 })).id);
  info = { port };
  stop = () => utils.release();
} else {
  const runner = await run({
    pgPool,
    concurrency: settings.concurrency,
    pollInterval: settings.pollInterval,
    noHandleSignals: true,
    taskList: { call_app: (payload, helpers) => runJob(appUrl, payload, helpers.job.id) },
    preset: {
      worker: {
        localQueue: { size: settings.localQueueSize },
        completeJobBatchDelay: settings.completeJobBatchDelay,
      },
    },
  });
  stop = () => runner.stop();
}

process.once("SIGTERM", () => {
  Promise.resolve(stop())
    .then(() => pgPool.end())
    .finally(() => process.exit(0));
});
serve({}, info);
