// The shape every system under test has (JSDoc types only; nothing runs here).

/**
 * What run.mjs hands a system when it starts it.
 * @typedef {object} StartContext
 * @property {string} databaseUrl  the benchmark's Postgres (DATABASE_URL)
 * @property {string} natsUrl
 * @property {Awaited<ReturnType<typeof import("../lib/pg-admin.mjs").createPgAdmin>>} pg
 * @property {string} appUrl   the fake app's base URL
 * @property {string} hookUrl  the webhook receiver's URL
 * @property {string} logDir   where the system's processes log
 * @property {boolean} quick
 */

/**
 * A started system.
 * @typedef {object} RunningSystem
 * @property {object} target  the load generator's target (lib/loadgen.mjs `configure`)
 * @property {object} [targetNoWebhook]  the same submit without a webhook (job systems)
 * @property {{ name: string, pid: number | undefined }[]} processes  its own processes, for CPU
 * @property {Record<string, string>} [databases]  its databases by part, for commits per run
 * @property {"app" | "consumer" | null} dispatch  where "dispatched" is stamped
 * @property {"hooks" | "consumer" | null} processed  what "processed" means (backlog, drain)
 * @property {() => Promise<{ dispatched: number, processed: number }>} [counts]  for "consumer" systems
 * @property {() => Promise<{ dispatch: { ids: string[], times: Float64Array }, processed: { ids: string[], times: Float64Array } }>} [collect]
 * @property {Record<string, unknown>} settings  how it is tuned (printed in the JSON)
 * @property {() => Promise<void>} stop
 */

/**
 * @typedef {object} SystemSpec
 * @property {string} name
 * @property {string} label
 * @property {"job" | "limit"} kind  a full async-request build, or a bound on one part of it
 * @property {(ctx: StartContext) => Promise<RunningSystem>} start
 */

export {};
