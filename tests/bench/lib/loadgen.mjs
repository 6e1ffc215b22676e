// The load generator, in a process of its own (forked by run.mjs). Open loop:
// request i is due at t0 + i/rate whatever happened to the ones before, and
// its latency is counted from that intended time, so a system that stalls is
// charged for the requests that queued behind the stall (no coordinated
// omission). Bounded in count and time: after the last intended send it waits
// `drainMs` at most, then aborts what is still open and counts it failed.
//
// Targets: `http` (POST, the id read from the JSON answer), `pg` (a
// single-row INSERT of a run-sized row per request on a pool of connections),
// `nats` (a JetStream publish awaiting its ack).
import fs from "node:fs";
import http from "node:http";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { now } from "./clock.mjs";
import { serve } from "./ipc.mjs";

/** @type {{ fire(i: number, done: (ok: boolean, id?: string) => void): () => void, close(): Promise<void> } | undefined} */
let target;
/** Requests fired and not yet settled, across runs (a cut pg query still runs on). */
let inFlight = 0;

/** A prompt-like payload of the size of a typical async request (~250 bytes). */
function payload(i) {
  return JSON.stringify({ prompt: "Summarise the attached quarterly report in three bullet points. ".repeat(3), n: i });
}

function httpTarget({ url, headers: given = {}, sockets = 128, idField = "run_id", expectStatus = 202, appDelayMs = 0 }) {
  // The fake app answers after the delay a request asks for; every system passes the header on.
  const headers = appDelayMs > 0 ? { ...given, "x-bench-delay-ms": String(appDelayMs) } : given;
  const agent = new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
  const u = new URL(url);
  return {
    fire(i, done) {
      const body = payload(i);
      const req = http.request(
        {
          agent,
          host: u.hostname,
          port: u.port,
          path: u.pathname + u.search,
          method: "POST",
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers },
        },
        (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("end", () => {
            if (res.statusCode !== expectStatus) return done(false);
            try {
              done(true, String(JSON.parse(Buffer.concat(chunks).toString())[idField]));
            } catch {
              done(false);
            }
          });
          res.on("error", () => done(false));
        },
      );
      req.on("error", () => done(false));
      req.end(body);
      return () => req.destroy();
    },
    async close() {
      agent.destroy();
    },
  };
}

function pgTarget({ url, poolSize, table }) {
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  pool.on("error", () => {}); // an idle client's error: the next query reports it
  const sql =
    `insert into ${table} (id, project_id, app, mode, status, method, path, query, upstream_url, ` +
    `request_headers, request_body, webhook_url, timeout_seconds, max_attempts) ` +
    `values ($1, 'dev', 'bench', 'async', 'dispatched', 'POST', '/predict', '', 'http://127.0.0.1:9/', $2, $3, $4, 43200, 3)`;
  const headers = JSON.stringify([{ name: "content-type", value: "application/json" }, { name: "user-agent", value: "bench" }]);
  return {
    fire(i, done) {
      const id = randomUUID();
      pool.query(sql, [id, headers, Buffer.from(payload(i)), "http://127.0.0.1:9/hook"]).then(
        () => done(true, id),
        () => done(false),
      );
      return () => {}; // a query cannot be aborted from here; the drain deadline still counts it failed
    },
    close: () => pool.end(),
  };
}

async function natsTarget({ url, subject }) {
  const nc = await connect({ servers: url.split(",") });
  const js = jetstream(nc);
  return {
    fire(i, done) {
      const id = randomUUID();
      js.publish(subject, JSON.stringify({ id, body: payload(i) }), { msgID: id }).then(
        () => done(true, id),
        () => done(false),
      );
      return () => {};
    },
    close: () => nc.close(),
  };
}

/**
 * Appends each request of a run that took 30 ms or more (or failed: NaN) to
 * `file`, one line each: its intended send time (ms of CLOCK_MONOTONIC, as
 * clock.mjs and lib/stall-log.mjs stamp), its latency and the run's rate.
 */
function logSlow(file, rate, intended, done) {
  const rows = [];
  for (let i = 0; i < intended.length; i++) {
    const ms = done[i] - intended[i];
    if (!(ms < 30)) rows.push(`${intended[i].toFixed(1)} ${ms.toFixed(1)} rate=${rate}\n`);
  }
  fs.appendFileSync(file, rows.join(""));
}

/**
 * One open-loop run. Returns per request its intended send time, the time its
 * answer came (NaN when it failed or was cut at the deadline) and the id the
 * system gave it.
 */
async function run({ rate, count, drainMs, startDelayMs = 20 }) {
  if (!target) throw new Error("configure a target first");
  const intended = new Float64Array(count);
  const done = new Float64Array(count).fill(NaN);
  const ids = new Array(count).fill("");
  const aborts = new Map();
  const interval = 1000 / rate;
  const t0 = now() + startDelayMs;
  for (let i = 0; i < count; i++) intended[i] = t0 + i * interval;
  let finished = 0;
  let resolveAll;
  const all = new Promise((r) => (resolveAll = r));
  let next = 0;
  let maxLagMs = 0;

  const fireOne = (i) => {
    let settled = false;
    inFlight++;
    aborts.set(
      i,
      target.fire(i, (ok, id) => {
        if (settled) return;
        settled = true;
        inFlight--;
        aborts.delete(i);
        if (ok) {
          done[i] = now();
          ids[i] = id ?? "";
        }
        if (++finished === count) resolveAll();
      }),
    );
  };
  // Fires everything due, then sleeps until the next intended time (timers
  // are ms-grained; a late tick fires the backlog at once and the latency
  // still counts from the intended times).
  const tick = () => {
    const t = now();
    while (next < count && intended[next] <= t) {
      maxLagMs = Math.max(maxLagMs, t - intended[next]);
      fireOne(next++);
    }
    if (next < count) setTimeout(tick, Math.max(0, Math.min(5, intended[next] - now())));
  };
  setTimeout(tick, startDelayMs);
  const deadline = t0 + count * interval + drainMs;
  await Promise.race([all, new Promise((r) => setTimeout(r, deadline - now()))]);
  // Past the deadline: still-open requests are failures; send no more.
  next = count;
  const cut = aborts.size;
  for (const abort of aborts.values()) abort();
  if (process.env.BENCH_SLOW_FILE) logSlow(process.env.BENCH_SLOW_FILE, rate, intended, done);
  return { intended, done, ids, cut, maxSendLagMs: maxLagMs };
}

/**
 * Closed loop, "as fast as the system accepts them": `count` submits with at
 * most `concurrency` open at once, each sent when another is answered.
 * Bounded by `timeoutMs` (what is open then is aborted and counted failed).
 */
async function burst({ count, concurrency, timeoutMs }) {
  if (!target) throw new Error("configure a target first");
  const t0 = now();
  let next = 0;
  let accepted = 0;
  let failed = 0;
  let open = 0;
  let lastAt = t0;
  const aborts = new Set();
  await new Promise((resolve) => {
    const deadline = setTimeout(() => {
      next = count;
      for (const abort of aborts) abort();
      failed += open;
      open = 0;
      resolve();
    }, timeoutMs);
    const fireNext = () => {
      if (next >= count) {
        if (open === 0) {
          clearTimeout(deadline);
          resolve();
        }
        return;
      }
      const i = next++;
      open++;
      inFlight++;
      let settled = false;
      let abort = () => {};
      abort = target.fire(i, (ok) => {
        if (settled) return;
        settled = true;
        inFlight--;
        aborts.delete(abort);
        if (next >= count && open === 0) return; // cut at the deadline
        open--;
        if (ok) accepted++;
        else failed++;
        lastAt = now();
        fireNext();
      });
      aborts.add(abort);
    };
    for (let k = 0; k < Math.min(concurrency, count); k++) fireNext();
  });
  return { count, accepted, failed, startedAt: t0, seconds: (lastAt - t0) / 1000 };
}

serve({
  burst,
  async configure(spec) {
    await target?.close();
    if (spec.kind === "http") target = httpTarget(spec);
    else if (spec.kind === "pg") target = pgTarget(spec);
    else if (spec.kind === "nats") target = await natsTarget(spec);
    else throw new Error(`unknown target kind ${spec.kind}`);
    return true;
  },
  run,
  /** Waits (up to `timeoutMs`) until nothing fired is still open; resolves with what is left. */
  async settle({ timeoutMs }) {
    const until = now() + timeoutMs;
    while (inFlight > 0 && now() < until) await new Promise((r) => setTimeout(r, 20));
    return inFlight;
  },
  async close() {
    await target?.close();
    target = undefined;
    return true;
  },
});
