// The benchmark's own connection to Postgres (the database named by
// DATABASE_URL): creates and drops each system's database and reads
// `pg_stat_database`. It never connects to a system's database while that
// system is measured, so its own queries are not counted as the system's.
import { randomBytes } from "node:crypto";
import pg from "pg";

/** @param {string} baseUrl DATABASE_URL */
export async function createPgAdmin(baseUrl) {
  const client = new pg.Client({ connectionString: baseUrl });
  client.on("error", () => {}); // a lost admin connection fails the next query, which reports it
  await client.connect();
  const created = [];
  const urlOf = (name) => {
    const u = new URL(baseUrl);
    u.pathname = `/${name}`;
    return u.toString();
  };
  return {
    client,
    /** A fresh database `bench_<label>_<random>`; dropped by close(). */
    async createDatabase(label) {
      const name = `bench_${label}_${randomBytes(4).toString("hex")}`;
      await client.query(`create database ${name}`);
      created.push(name);
      return { name, url: urlOf(name) };
    },
    /** `xact_commit` of each database named (Postgres' count of committed transactions). */
    async commits(names) {
      const r = await client.query("select datname, xact_commit::bigint as c from pg_stat_database where datname = any($1)", [names]);
      return Object.fromEntries(names.map((n) => [n, Number(r.rows.find((row) => row.datname === n)?.c ?? NaN)]));
    },
    async settings() {
      const r = await client.query(
        "select name, setting, unit from pg_settings where name = any($1)",
        [["fsync", "synchronous_commit", "shared_buffers", "max_connections", "wal_level", "server_version"]],
      );
      return Object.fromEntries(r.rows.map((row) => [row.name, row.unit ? `${row.setting} ${row.unit}` : row.setting]));
    },
    async close() {
      for (const name of created.splice(0)) {
        await client.query(`drop database if exists ${name} with (force)`).catch(() => {});
      }
      await client.end();
    },
  };
}
