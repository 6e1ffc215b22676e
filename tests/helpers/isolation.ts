import { randomBytes } from "node:crypto";
import pg from "pg";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";

/** A random lowercase suffix for names owned by one test file. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString("hex")}`;
}

function requiredEnv(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with \`npm test\``);
  return v;
}

/** A fresh database of its own for one test file; `drop()` removes it. */
export async function createTestDatabase(): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const base = requiredEnv("DATABASE_URL");
  const name = uniqueName("lh_test");
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

/** A NATS prefix of its own for one test file; `cleanup()` deletes its streams. */
export async function createTestNats(): Promise<{ url: string; prefix: string; cleanup(): Promise<void> }> {
  const url = requiredEnv("NATS_URL");
  const prefix = uniqueName("t");
  return {
    url,
    prefix,
    async cleanup() {
      const nc = await connect({ servers: url.split(",") });
      try {
        const jsm = await jetstreamManager(nc);
        // The mesh's streams and its lease bucket (KV_<PREFIX>_LEASES).
        for (const s of [`${prefix.toUpperCase()}_DISPATCH`, `${prefix.toUpperCase()}_EVENTS`, `KV_${prefix.toUpperCase()}_LEASES`]) {
          await jsm.streams.delete(s).catch(() => false);
        }
      } finally {
        await nc.close();
      }
    },
  };
}
