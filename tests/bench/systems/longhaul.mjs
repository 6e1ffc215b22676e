// Longhaul as `npm start` runs it: the four services as processes
// (scripts/lib/mesh.mjs), on the benchmark's Postgres and nats-server, with
// a database and a NATS prefix of their own. The notifier gets a second
// database so that commits of the async path proper (scheduler: submit, claim,
// complete) and of webhook delivery (notifier) are counted apart.
import fs from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { startMesh } from "../../../scripts/lib/mesh.mjs";

/** Deletes the streams the services made under `prefix` (names as natsNames() gives them). */
async function deleteStreams(natsUrl, prefix) {
  const nc = await connect({ servers: natsUrl.split(",") });
  try {
    const jsm = await jetstreamManager(nc);
    for (const s of ["DISPATCH", "EVENTS"]) await jsm.streams.delete(`${prefix.toUpperCase()}_${s}`).catch(() => false);
  } finally {
    await nc.close();
  }
}

/** @type {import("./types.mjs").SystemSpec} */
export const longhaul = {
  name: "longhaul",
  label: "Longhaul",
  kind: "job",
  async start(ctx) {
    const db = await ctx.pg.createDatabase("longhaul");
    const notifierDb = await ctx.pg.createDatabase("longhaul_notifier");
    const prefix = `bench_${randomBytes(4).toString("hex")}`;
    const logDir = path.join(ctx.logDir, "longhaul");
    fs.mkdirSync(logDir, { recursive: true });
    const mesh = await startMesh({
      databaseUrl: db.url,
      natsUrl: ctx.natsUrl,
      natsPrefix: prefix,
      logDir,
      readyTimeoutMs: 120_000, // as npm start: a busy machine starts slowly
      env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true" },
      serviceEnv: { notifier: { DATABASE_URL: notifierDb.url } },
    }).catch(async (err) => {
      await deleteStreams(ctx.natsUrl, prefix); // the scheduler may have made them before a later service failed
      throw err;
    });
    try {
      const put = await fetch(`${mesh.ingressUrl}/v1/apps/bench`, {
        method: "PUT",
        headers: { authorization: `Bearer ${mesh.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ url: ctx.appUrl }),
      });
      if (put.status !== 201 && put.status !== 200) throw new Error(`PUT /v1/apps/bench answered ${put.status}: ${await put.text()}`);
    } catch (err) {
      await mesh.stop();
      await deleteStreams(ctx.natsUrl, prefix);
      throw err;
    }
    const hook = encodeURIComponent(ctx.hookUrl);
    return {
      target: {
        kind: "http",
        url: `${mesh.ingressUrl}/dev/bench/predict?async=true&webhookEndpoint=${hook}`,
        headers: { authorization: `Bearer ${mesh.apiKey}` },
      },
      targetNoWebhook: {
        kind: "http",
        url: `${mesh.ingressUrl}/dev/bench/predict?async=true`,
        headers: { authorization: `Bearer ${mesh.apiKey}` },
      },
      processes: mesh.processes.map((p) => ({ name: p.name, pid: p.pid })),
      databases: { scheduler: db.name, notifier: notifierDb.name },
      dispatch: "app",
      processed: "hooks",
      settings: { services: "one copy each, defaults of npm start", LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true", logDir },
      async stop() {
        await mesh.stop();
        await deleteStreams(ctx.natsUrl, prefix);
      },
    };
  },
};
