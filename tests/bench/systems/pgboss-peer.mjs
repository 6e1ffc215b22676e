// The pg-boss build of "async requests" (forked by pgboss.mjs), one role per
// process: `api` (the submit endpoint: send() then 202 with the job id) or
// `worker` (work(): call the app, POST the webhook). Settings come as JSON in
// BENCH_PEER_SETTINGS and are documented in tests/bench/README.md.
import { PgBoss } from "pg-boss";
import { serve } from "../lib/ipc.mjs";
import { runJob, startApi } from "./peer-common.mjs";

const role = process.argv[2];
const { connectionString, appUrl, queue, settings } = JSON.parse(process.env.BENCH_PEER_SETTINGS ?? "{}");

const boss = new PgBoss({
  connectionString,
  max: settings.poolSize,
  // LISTEN/NOTIFY wakes workers the moment a job is created (pg-boss 12 opt-in);
  // the submit side only needs the queue's `notify` flag, which send() honours.
  useListenNotify: role === "worker",
  // Maintenance and scheduling run in the worker process only, as one would deploy it.
  supervise: role === "worker",
  schedule: false,
});
boss.on("error", (err) => console.error(`[pg-boss ${role}]`, err.message));
await boss.start();
await boss.createQueue(queue, { notify: true, retryLimit: 2, retryDelay: 1, retryBackoff: true });

let info = {};
if (role === "api") {
  const port = await startApi((job) => boss.send(queue, job));
  info = { port };
} else {
  await boss.work(
    queue,
    {
      batchSize: settings.batchSize,
      localConcurrency: settings.localConcurrency,
      pollingIntervalSeconds: settings.pollingIntervalSeconds,
      burstWhenBatchFull: true,
    },
    // A batch completes together once every job in it is done.
    (jobs) => Promise.all(jobs.map((j) => runJob(appUrl, j.data, j.id))),
  );
}

process.once("SIGTERM", () => {
  boss.stop({ graceful: true, timeout: 5_000 }).finally(() => process.exit(0));
});
serve({}, info);
