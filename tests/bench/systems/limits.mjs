// The limits: what one part of an async-request system can do on this
// machine at best, measured with the same load generator.
// - bare-http: node:http answering 202 {"run_id"}, storing nothing.
// - raw-insert: one single-row INSERT (autocommit) per request of a row the
//   size and shape of a Longhaul run, into a table with the columns and the
//   indexes an accepted run touches, on a pool as large as the scheduler's.
// - jetstream: a JetStream publish awaiting its ack (work-queue stream on file
//   storage, as Longhaul's dispatch stream), and a pull consumer acking each.
import path from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { connect } from "@nats-io/transport-node";
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, jetstreamManager } from "@nats-io/jetstream";
import { forkChild } from "../lib/ipc.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));

/** @type {import("./types.mjs").SystemSpec} */
export const bareHttp = {
  name: "bare-http",
  label: "limit: bare node:http 202",
  kind: "limit",
  async start() {
    const server = await forkChild(path.join(here, "bare-http-server.mjs"), { name: "bare-http" });
    return {
      target: { kind: "http", url: `http://127.0.0.1:${server.info.port}/bench/predict` },
      processes: [{ name: "server", pid: server.pid }],
      dispatch: null,
      processed: null,
      settings: { server: "node:http, one process" },
      stop: () => server.stop(),
    };
  },
};

const RUNS_LIKE_TABLE = `
create table runs (
  id uuid primary key, project_id text not null, app text not null, mode text not null, status text not null,
  method text not null, path text not null, query text not null default '', upstream_url text not null,
  request_headers jsonb not null default '[]'::jsonb, request_body bytea, webhook_url text,
  webhook_state text not null default 'none', webhook_taken_at timestamptz, webhook_published_at timestamptz,
  priority integer not null default 0, timeout_seconds integer not null, max_attempts integer not null,
  attempt integer not null default 1, idempotency_key text, retry_of uuid, not_before timestamptz,
  created_at timestamptz not null default now(), dispatched_at timestamptz default now(), started_at timestamptz,
  finished_at timestamptz, owner text, lease_expires_at timestamptz, status_code integer, response_headers jsonb,
  response_body bytea, response_truncated boolean not null default false, error_code text, error_message text,
  traceparent text not null default '', tracestate text not null default '');
create index runs_project_created on runs (project_id, created_at desc, id desc);
create index runs_project_app_created on runs (project_id, app, created_at desc, id desc);
create index runs_in_flight on runs (project_id, app) where status in ('dispatched', 'running');`;

/** Connections of the raw INSERT pool: the scheduler's default SCHEDULER_DB_POOL_SIZE. */
export const RAW_INSERT_POOL = 20;

/** @type {import("./types.mjs").SystemSpec} */
export const rawInsert = {
  name: "raw-insert",
  label: "limit: raw INSERT",
  kind: "limit",
  async start(ctx) {
    const db = await ctx.pg.createDatabase("raw_insert");
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query(RUNS_LIKE_TABLE);
    await c.end();
    return {
      target: { kind: "pg", url: db.url, poolSize: RAW_INSERT_POOL, table: "runs" },
      processes: [], // the inserts come from the load generator's own pool; Postgres does the work
      dispatch: null,
      processed: null,
      settings: { poolSize: RAW_INSERT_POOL, statement: "single-row INSERT, autocommit, table shaped like runs" },
      stop: async () => {},
    };
  },
};

/** @type {import("./types.mjs").SystemSpec} */
export const rawJetStream = {
  name: "jetstream",
  label: "limit: JetStream pub+consume",
  kind: "limit",
  async start(ctx) {
    const prefix = `BENCH_${randomBytes(4).toString("hex").toUpperCase()}`;
    const stream = `${prefix}_RAW`;
    const subject = `${prefix.toLowerCase()}.raw`;
    const nc = await connect({ servers: ctx.natsUrl.split(",") });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: stream,
      subjects: [subject],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      duplicate_window: 120 * 1e9,
      num_replicas: 1,
    });
    await jsm.consumers.add(stream, {
      durable_name: "bench",
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: 30 * 1e9,
      max_ack_pending: 20_000,
    });
    const env = { ...process.env, BENCH_JS_SETTINGS: JSON.stringify({ natsUrl: ctx.natsUrl, stream, durable: "bench" }) };
    const consumer = await forkChild(path.join(here, "jetstream-consumer.mjs"), { env, name: "jetstream-consumer" }).catch(async (err) => {
      await jsm.streams.delete(stream).catch(() => false);
      await nc.close();
      throw err;
    });
    return {
      target: { kind: "nats", url: ctx.natsUrl, subject },
      processes: [{ name: "consumer", pid: consumer.pid }],
      dispatch: "consumer",
      processed: "consumer",
      counts: () => consumer.request("counts"),
      collect: () => consumer.request("collect"),
      settings: { stream: "work queue, file storage, Nats-Msg-Id dedup", consumer: "durable pull, explicit ack, consume() 1000" },
      async stop() {
        await consumer.stop();
        await jsm.streams.delete(stream).catch(() => false);
        await nc.close();
      },
    };
  },
};
