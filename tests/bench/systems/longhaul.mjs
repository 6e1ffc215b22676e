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

/**
 * Longhaul, and the same with OpenTelemetry trace export on (`otlp`): every
 * service exports OTLP/HTTP to the receiver in the sinks process, with the
 * sampler OTEL_TRACES_SAMPLER names (parentbased_always_on when unset, the
 * SDK's default: every span of every run exported).
 * @returns {import("./types.mjs").SystemSpec}
 */
function longhaulSystem({ name, label, otlp }) {
  return {
    name,
    label,
    kind: "job",
    async start(ctx) {
      const sampler = process.env.OTEL_TRACES_SAMPLER ?? "parentbased_always_on";
      const telemetry = otlp
        ? {
            OTEL_EXPORTER_OTLP_ENDPOINT: ctx.otlpUrl,
            OTEL_TRACES_SAMPLER: sampler,
            ...(process.env.OTEL_TRACES_SAMPLER_ARG ? { OTEL_TRACES_SAMPLER_ARG: process.env.OTEL_TRACES_SAMPLER_ARG } : {}),
          }
        : {};
      const dbLabel = name.replaceAll("-", "_");
      const db = await ctx.pg.createDatabase(dbLabel);
      const notifierDb = await ctx.pg.createDatabase(`${dbLabel}_notifier`);
      const prefix = `bench_${randomBytes(4).toString("hex")}`;
      const logDir = path.join(ctx.logDir, ctx.longCalls ? `${name}-long-calls` : name);
      fs.mkdirSync(logDir, { recursive: true });
      const mesh = await startMesh({
        databaseUrl: db.url,
        natsUrl: ctx.natsUrl,
        natsPrefix: prefix,
        logDir,
        readyTimeoutMs: 120_000, // as npm start: a busy machine starts slowly
        nodeArgs: ["--import", "@longhaul/shared/otel-register", ...(process.env.BENCH_LONGHAUL_NODE_ARGS ?? "").split(" ").filter(Boolean)],
        env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true", ...telemetry },
        // The notifier migrates its own database at start (the mesh runs the migrate command on the scheduler's).
        serviceEnv: { notifier: { DATABASE_URL: notifierDb.url, LONGHAUL_MIGRATE_AT_START: "true" } },
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
        settings: {
          services: "one copy each, defaults of npm start",
          LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true",
          ...(otlp ? { OTEL_EXPORTER_OTLP_ENDPOINT: "the sinks process (OTLP/HTTP, protobuf)", OTEL_TRACES_SAMPLER: telemetry.OTEL_TRACES_SAMPLER } : { tracing: "no exporter (spans not recorded)" }),
          logDir,
        },
        ...(otlp ? { otlp: true } : {}),
        async stop() {
          await mesh.stop();
          await deleteStreams(ctx.natsUrl, prefix);
        },
      };
    },
  };
}

export const longhaul = longhaulSystem({ name: "longhaul", label: "Longhaul", otlp: false });
export const longhaulOtlp = longhaulSystem({ name: "longhaul-otlp", label: "Longhaul, OTLP export on", otlp: true });
