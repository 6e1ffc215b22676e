// A diagnostic preload for the services (never loaded by default), beside
// stall-log.mjs: `--node-args="--import ./tests/bench/lib/survivors.mjs"` on
// `npm run bench:profile` (or BENCH_LONGHAUL_NODE_ARGS on `npm run bench`).
// From SURVIVORS_START_MS (10000) after start, for SURVIVORS_MS (8000), each
// process samples what it allocates (V8's sampling heap profiler, one sample
// per 4 KiB) and keeps only objects that outlived a scavenge: those a minor
// GC freed are left out, those a full GC freed later are kept. It writes
// $SURVIVORS_DIR/<service>-<pid>.heapprofile (default /tmp/longhaul-survivors);
// `node tests/bench/gc-summary.mjs FILE...` sums it by package, frame and stack.
// These are the bytes each scavenge copies and, the next time, promotes.
// SURVIVORS_ALL=1 keeps the objects a scavenge freed too: all that was allocated.
import fs from "node:fs";
import { Session } from "node:inspector";
import path from "node:path";

const dir = process.env.SURVIVORS_DIR ?? "/tmp/longhaul-survivors";
const service = /services\/([^/]+)\//.exec(process.argv[1] ?? "")?.[1] ?? path.basename(process.argv[1] ?? "node");
const session = new Session();
session.connect();
const post = (method, params) =>
  new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));

const report = (err) => process.stderr.write(`[survivors] ${service}: ${err instanceof Error ? err.message : String(err)}\n`);

setTimeout(() => {
  post("HeapProfiler.enable")
    .then(() =>
      post("HeapProfiler.startSampling", {
        samplingInterval: 4096,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: process.env.SURVIVORS_ALL === "1",
      }),
    )
    .then(() => {
      setTimeout(() => {
        post("HeapProfiler.stopSampling")
          .then(({ profile }) => {
            fs.mkdirSync(dir, { recursive: true });
            fs.writeFileSync(path.join(dir, `${service}-${process.pid}.heapprofile`), JSON.stringify(profile));
          })
          .catch(report);
      }, Number(process.env.SURVIVORS_MS ?? 8000)).unref();
    })
    .catch(report);
}, Number(process.env.SURVIVORS_START_MS ?? 10_000)).unref();
