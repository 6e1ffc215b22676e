import pg from "pg";
import { Kysely, PostgresDialect, sql, type QueryResult, type RawBuilder } from "kysely";
import type { Migration } from "kysely/migration";
import type { Logger } from "pino";
import { isDatabaseOutage } from "../errors.js";

export { sql };
export type { Migration };

/** Options of {@link createDb}. */
export interface DbOptions {
  url: string;
  log: Logger;
  /** @default 10 */
  poolSize?: number;
  /** Sets `search_path` on each connection; lets a test use its own schema. */
  schema?: string;
  /**
   * Runs the statements marked with {@link preparedStatement} as named
   * prepared statements (parsed and planned once per connection). Off for a
   * pooler that cannot keep them (PgBouncer in transaction mode before 1.21).
   * @default true
   */
  prepare?: boolean;
}

/** The hot statements' texts and their names (preparedStatement). */
const preparedNames = new Map<string, string>();
const preparedTexts = new Set<string>();

/**
 * Marks a statement's fixed text as one a connection prepares once and then
 * only binds and executes: Postgres skips its parse and, after a few runs,
 * its planning (the hot path's statements were a third of Postgres's CPU per
 * run). Only for texts that name their columns: a prepared `select *` fails
 * once a newer migration adds a column. Returns the text, to use as usual
 * (`CompiledQuery.raw(text, parameters)`).
 */
export function preparedStatement(name: string, text: string): string {
  const known = preparedNames.get(text);
  if (known !== undefined && known !== name) throw new Error(`statement ${name} has the text of ${known}`);
  if (known === undefined && preparedTexts.has(name)) throw new Error(`statement ${name} has two texts`);
  preparedNames.set(text, name);
  preparedTexts.add(name);
  return text;
}

/**
 * Runs a `sql` template whose text never varies (only its parameters do) as
 * the prepared statement `name` (see preparedStatement).
 */
export async function executePrepared<DB, R>(db: Kysely<DB>, name: string, query: RawBuilder<R>): Promise<QueryResult<R>> {
  const compiled = query.compile(db);
  preparedStatement(name, compiled.sql);
  return db.executeQuery(compiled);
}

/** A pg client that sends the marked statements by name (the driver prepares each once per connection). */
class PreparingClient extends pg.Client {
  override query(...args: unknown[]): never {
    const [text, values] = args;
    const name = typeof text === "string" && args.length === 2 && Array.isArray(values) ? preparedNames.get(text) : undefined;
    const forward = super.query.bind(this) as (...a: unknown[]) => never;
    return name === undefined ? forward(...args) : forward({ name, text, values });
  }
}

/**
 * A Kysely instance on a pg Pool. Idle-client errors (a Postgres restart) are
 * logged, never thrown into the process.
 */
export function createDb<DB>(options: DbOptions): Kysely<DB> {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
    ...(options.prepare === false ? {} : { Client: PreparingClient }),
  });
  pool.on("error", (err) => options.log.warn({ err }, "idle postgres client failed"));
  // pg-pool drops its listener while a client is checked out, and a pg client
  // emits "error" when its socket dies (even after failing the query in hand):
  // without a listener of its own, a Postgres outage crashes the process.
  pool.on("connect", (client) => {
    client.on("error", (err) => options.log.warn({ err }, "postgres connection failed"));
  });
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * Creates the database named in `url` when it does not exist, so that a fresh
 * server works with zero set-up. Connects to the `postgres` database for that
 * (the migrate command does this unless LONGHAUL_ENSURE_DATABASE=false).
 */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ""));
  if (!name) return;
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const found = await client.query("select 1 from pg_database where datname = $1", [name]);
    if (found.rowCount === 0) {
      await client.query(`create database "${name.replaceAll('"', '""')}"`).catch((err: { code?: string }) => {
        // 42P04 duplicate_database: another service created it meanwhile.
        if (err.code !== "42P04") throw err;
      });
    }
  } finally {
    await client.end();
  }
}

/** True for the SQLSTATEs that mean Postgres cannot be reached or is going away. */
export function isConnectionError(err: unknown): boolean {
  return isDatabaseOutage(err);
}
