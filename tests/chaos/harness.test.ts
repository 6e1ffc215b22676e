// The chaos run's own fault machinery, without the run: the 3-node JetStream
// cluster keeps a 3-replica stream writable while one node is killed -9 and
// takes the node back; a private Postgres restarted by the harness answers on
// the same URL. (The chaos run itself is `npm run chaos`, not part of npm test.)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { startNatsCluster } from "./nats-cluster.mjs";
import { startPostgres } from "../../scripts/lib/postgres.mjs";

const quiet = () => {};
const dirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755); // as root, Postgres runs as the postgres user
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe("startNatsCluster", () => {
  it("keeps an R3 stream writable through a kill -9 of one node and takes the node back", async () => {
    const cluster = await startNatsCluster({ dir: tempDir("lh-chaos-nats-"), log: quiet });
    const nc = await connect({ servers: cluster.url.split(","), timeout: 5_000 });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "CHAOS_T", subjects: ["chaos.t"], num_replicas: 3 });
      const js = jetstream(nc);
      await js.publish("chaos.t", "before");

      await cluster.kill(1);
      // Two of three nodes are a quorum: a publish is still acknowledged (after a
      // leader election when the killed node led the stream).
      let ack;
      for (let i = 0; i < 40 && !ack; i++) {
        ack = await js.publish("chaos.t", "during", { timeout: 2_000 }).catch(() => undefined);
        if (!ack) await new Promise((r) => setTimeout(r, 250));
      }
      expect(ack?.seq).toBe(2);

      await cluster.start(1);
      // The restarted node catches up: leader plus two current replicas, both messages.
      let members: string[] = [];
      for (let i = 0; i < 120; i++) {
        const info = await jsm.streams.info("CHAOS_T");
        const current = (info.cluster?.replicas ?? []).filter((r) => r.current).map((r) => r.name);
        members = [info.cluster?.leader ?? "", ...current].filter(Boolean);
        if (members.length === 3 && info.state.messages === 2) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(members.sort()).toEqual(cluster.nodes.map((n) => n.name).sort());
    } finally {
      await nc.close();
      await cluster.stop();
    }
  });
});

describe("startPostgres restart", () => {
  it("stops the server, cutting connections, and starts it again on the same URL", async () => {
    const server = await startPostgres({ dir: path.join(tempDir("lh-chaos-pg-"), "pg"), fast: true, log: quiet });
    const pool = new pg.Pool({ connectionString: server.url, max: 1 });
    pool.on("error", () => {});
    try {
      const before = (await pool.query("select pg_postmaster_start_time() as t")).rows[0].t as Date;
      await server.restart({ downMs: 100 });
      // The pooled connection was cut by the stop: the pool replaces it on the next query.
      let after: Date | undefined;
      for (let i = 0; i < 5 && !after; i++) {
        after = await pool
          .query("select pg_postmaster_start_time() as t")
          .then((r) => r.rows[0].t as Date)
          .catch(() => undefined);
      }
      expect(after).toBeDefined();
      expect(after!.getTime()).toBeGreaterThan(before.getTime());
    } finally {
      await pool.end();
      await server.stop();
    }
  });
});
