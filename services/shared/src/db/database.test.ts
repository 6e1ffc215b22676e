import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompiledQuery, sql, type Kysely } from "kysely";
import pino from "pino";
import { createTestDatabase } from "../../../../tests/helpers/isolation.js";
import { createDb, executePrepared, preparedStatement } from "./database.js";

// Real Postgres: pg_prepared_statements lists what the session holds.
let database: Awaited<ReturnType<typeof createTestDatabase>>;
const log = pino({ level: "silent" });
const COUNT_ITEMS = preparedStatement("lh_test_count_items", "select count(*)::int as n from items where n >= $1");

/** The statements the (single) connection of `db` holds prepared, with their texts. */
async function preparedOn(db: Kysely<unknown>): Promise<Map<string, string>> {
  const { rows } = await sql<{ name: string; statement: string }>`select name, statement from pg_prepared_statements`.execute(db);
  return new Map(rows.map((r) => [r.name, r.statement]));
}

beforeAll(async () => {
  database = await createTestDatabase();
  const db = createDb<unknown>({ url: database.url, log, poolSize: 1 });
  await sql`create table items (id int primary key, n int not null)`.execute(db);
  await sql`insert into items select i, i from generate_series(1, 10) i`.execute(db);
  await db.destroy();
});

afterAll(async () => {
  await database?.drop();
});

describe("prepared statements", () => {
  it("runs a marked text as a named statement, prepared once per connection and answered as usual", async () => {
    const db = createDb<unknown>({ url: database.url, log, poolSize: 1 });
    try {
      const first = await db.executeQuery<{ n: number }>(CompiledQuery.raw(COUNT_ITEMS, [4]));
      const second = await db.executeQuery<{ n: number }>(CompiledQuery.raw(COUNT_ITEMS, [9]));
      expect(first.rows).toEqual([{ n: 7 }]);
      expect(second.rows).toEqual([{ n: 2 }]);
      const held = await preparedOn(db);
      expect(held.get("lh_test_count_items")).toBe(COUNT_ITEMS);
      // An unmarked text is not prepared.
      expect([...held.keys()]).toEqual(["lh_test_count_items"]);
    } finally {
      await db.destroy();
    }
  });

  it("prepares a sql template's fixed text, and a bad parameter fails only its own call", async () => {
    const db = createDb<unknown>({ url: database.url, log, poolSize: 1 });
    try {
      const idsAbove = (n: number) => executePrepared(db, "lh_test_ids_above", sql<{ id: number }>`select id from items where n > ${n} order by id`);
      expect((await idsAbove(8)).rows).toEqual([{ id: 9 }, { id: 10 }]);
      await expect(executePrepared(db, "lh_test_ids_above", sql`select id from items where n > ${"not a number"} order by id`)).rejects.toThrow(
        /invalid input syntax/,
      );
      expect((await idsAbove(9)).rows).toEqual([{ id: 10 }]);
      expect((await preparedOn(db)).has("lh_test_ids_above")).toBe(true);
    } finally {
      await db.destroy();
    }
  });

  it("sends marked texts unprepared when prepare is off (a pooler that cannot keep them)", async () => {
    const db = createDb<unknown>({ url: database.url, log, poolSize: 1, prepare: false });
    try {
      expect((await db.executeQuery<{ n: number }>(CompiledQuery.raw(COUNT_ITEMS, [1]))).rows).toEqual([{ n: 10 }]);
      expect((await preparedOn(db)).size).toBe(0);
    } finally {
      await db.destroy();
    }
  });

  it("refuses one text under two names, and two texts under one name", () => {
    expect(() => preparedStatement("lh_test_other_name", COUNT_ITEMS)).toThrow(/has the text of lh_test_count_items/);
    expect(() => preparedStatement("lh_test_count_items", `${COUNT_ITEMS} limit 1`)).toThrow(/lh_test_count_items has two texts/);
  });
});
