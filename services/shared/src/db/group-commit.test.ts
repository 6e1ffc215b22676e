import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import pg from "pg";
import { createTestDatabase } from "../../../../tests/helpers/isolation.js";
import { groupCommit, type GroupCommitOptions } from "./group-commit.js";

// Real Postgres: a table with a check constraint stands for a row that is bad
// on its own; a lock held elsewhere with a lock_timeout for a failure of the
// database, not of any row.
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let pool: pg.Pool;
let batches: number[];

/** Inserts a batch in one statement; answers each item with its id. */
function writer(options: { lockTimeoutMs?: number } = {}) {
  return groupCommit<{ id: number; n: number }, number>(
    async (items) => {
      batches.push(items.length);
      const client = await pool.connect();
      try {
        if (options.lockTimeoutMs) await client.query(`set lock_timeout = ${options.lockTimeoutMs}`);
        const r = await client.query<{ id: number }>(
          "insert into items (id, n) select * from unnest($1::int[], $2::int[]) returning id",
          [items.map((i) => i.id), items.map((i) => i.n)],
        );
        const ids = new Set(r.rows.map((x) => x.id));
        return items.map((i) => (ids.has(i.id) ? i.id : -1));
      } finally {
        if (options.lockTimeoutMs) await client.query("reset lock_timeout").catch(() => undefined);
        client.release();
      }
    },
    { maxBatch: 50 },
  );
}

async function stored(): Promise<number[]> {
  return (await pool.query<{ id: number }>("select id from items order by id")).rows.map((r) => r.id);
}

beforeAll(async () => {
  database = await createTestDatabase();
  pool = new pg.Pool({ connectionString: database.url, max: 4 });
  await pool.query("create table items (id int primary key, n int not null check (n >= 0))");
});

afterAll(async () => {
  await pool?.end();
  await database?.drop();
});

describe("group commit", () => {
  it("writes concurrent callers in shared statements, each answered with its own row", async () => {
    batches = [];
    await pool.query("truncate items");
    const write = writer();
    const ids = Array.from({ length: 40 }, (_, i) => i + 1);
    const answers = await Promise.all(ids.map((id) => write({ id, n: id })));
    expect(answers).toEqual(ids);
    expect(await stored()).toEqual(ids);
    // The first caller went alone; the others queued behind it and shared statements.
    expect(batches.length).toBeLessThan(ids.length);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(ids.length);
  });

  it("fails only the caller of a bad row; the rest of its batch commits", async () => {
    batches = [];
    await pool.query("truncate items");
    const write = writer();
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => write({ id: 100 + i, n: i === 7 ? -1 : i })),
    );
    const rejected = results.flatMap((r, i) => (r.status === "rejected" ? [{ i, err: r.reason as { code?: string; message?: string } }] : []));
    expect(rejected.map((r) => r.i)).toEqual([7]);
    expect(rejected[0]!.err.code).toBe("23514"); // check_violation: its own clear error
    expect(await stored()).toEqual(Array.from({ length: 20 }, (_, i) => 100 + i).filter((id) => id !== 107));
    // The bad row was in a batch of several (else this proves nothing).
    expect(batches.some((n) => n > 1)).toBe(true);
  });

  it("fails every caller of a batch the database refuses, and stores none of it", async () => {
    batches = [];
    await pool.query("truncate items");
    const write = writer({ lockTimeoutMs: 200 });
    // Another session holds the table: the batch's statement times out on its lock.
    const holder = await pool.connect();
    try {
      await holder.query("begin");
      await holder.query("lock table items in access exclusive mode");
      const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => write({ id: 200 + i, n: i })));
      expect(results.every((r) => r.status === "rejected")).toBe(true);
      for (const r of results) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: "55P03" });
    } finally {
      await holder.query("rollback");
      holder.release();
    }
    expect(await stored()).toEqual([]);
  });
});

describe("group commit with a window", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A writer that records its batches and answers at once (the window, not the database, is under test). */
  function windowed(options: Omit<GroupCommitOptions, "maxBatch"> & { windowMs: number; maxBatch?: number }) {
    const written: number[][] = [];
    const write = groupCommit<number, number>(async (items) => {
      written.push(items);
      return items;
    }, { maxBatch: options.maxBatch ?? 50, ...options });
    return { write, written };
  }

  it("holds a batch for its window so that callers who come apart share one write; flushes early when full", async () => {
    vi.useFakeTimers();
    const { write, written } = windowed({ windowMs: 5, maxBatch: 3 });
    const first = write(1);
    await vi.advanceTimersByTimeAsync(2);
    const second = write(2);
    expect(written).toEqual([]); // still inside the first caller's window
    await vi.advanceTimersByTimeAsync(3);
    expect(await Promise.all([first, second])).toEqual([1, 2]);
    expect(written).toEqual([[1, 2]]);
    // Full before its window ends: written at once.
    const full = [write(3), write(4), write(5)];
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([[1, 2], [3, 4, 5]]);
    expect(await Promise.all(full)).toEqual([3, 4, 5]);
  });

  it("windowWhenBusy: writes a lone caller at once, and makes callers that come close together wait for each other", async () => {
    vi.useFakeTimers();
    const { write, written } = windowed({ windowMs: 5, windowWhenBusy: true });
    const lone = write(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([[1]]); // no window: nobody came just before it
    expect(await lone).toBe(1);
    await vi.advanceTimersByTimeAsync(20);
    expect(await write(2)).toBe(2); // alone again after a quiet spell
    expect(written).toEqual([[1], [2]]);
    // Two more within a window of the one before: the first of them opens a window the other joins.
    await vi.advanceTimersByTimeAsync(1);
    const close = write(3);
    await vi.advanceTimersByTimeAsync(2);
    const closer = write(4);
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([[1], [2]]);
    await vi.advanceTimersByTimeAsync(5);
    expect(await Promise.all([close, closer])).toEqual([3, 4]);
    expect(written).toEqual([[1], [2], [3, 4]]);
  });

  it("busyWithinMs: callers evenly spaced by more than the window share one when they come within busyWithinMs", async () => {
    vi.useFakeTimers();
    const { write, written } = windowed({ windowMs: 20, windowWhenBusy: true, busyWithinMs: 100 });
    const lone = write(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([[1]]); // nobody within 100 ms before it
    expect(await lone).toBe(1);
    // 150 callers a second: 7 ms apart, each within 100 ms of the one before.
    const paced: Promise<number>[] = [];
    for (const n of [2, 3, 4]) {
      await vi.advanceTimersByTimeAsync(7);
      paced.push(write(n));
    }
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([[1]]); // the window the first of them opened is still open
    await vi.advanceTimersByTimeAsync(20);
    expect(await Promise.all(paced)).toEqual([2, 3, 4]);
    expect(written).toEqual([[1], [2, 3, 4]]);
    // A quiet spell longer than busyWithinMs: the next one is written alone, at once.
    await vi.advanceTimersByTimeAsync(150);
    const after = write(5);
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([[1], [2, 3, 4], [5]]);
    expect(await after).toBe(5);
  });

  it("windowCallers: callers too far apart for the window to hold more are written at once; close enough, they share it", async () => {
    vi.useFakeTimers();
    const { write, written } = windowed({ windowMs: 4, windowWhenBusy: true, windowCallers: 2 });
    // 333 callers a second, each within the window of the one before, but a
    // 4-ms window would hold only 1.3 of them: none waits.
    const spaced: Promise<number>[] = [];
    for (let n = 1; n <= 20; n++) {
      spaced.push(write(n));
      await vi.advanceTimersByTimeAsync(0);
      expect(written.at(-1)).toEqual([n]);
      await vi.advanceTimersByTimeAsync(3);
    }
    expect(await Promise.all(spaced)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // 1000 a second: once the mean gap is down to half the window, windows open and hold several.
    const close: Promise<number>[] = [];
    for (let n = 21; n <= 60; n++) {
      close.push(write(n));
      await vi.advanceTimersByTimeAsync(1);
    }
    await vi.advanceTimersByTimeAsync(5);
    expect(await Promise.all(close)).toHaveLength(40);
    const later = written.filter((b) => b[0]! > 20);
    expect(later.flat()).toEqual(Array.from({ length: 40 }, (_, i) => i + 21));
    expect(later.at(-1)!.length).toBeGreaterThan(1);
    expect(later.length).toBeLessThan(20);
  });

  it("windowCallers: callers that come in bunches below the rate do not open windows", async () => {
    vi.useFakeTimers();
    const { write, written } = windowed({ windowMs: 4, windowWhenBusy: true, windowCallers: 2 });
    // Three at once every 8 ms (375 a second, as submits come off a stream):
    // two of every three come 0 ms after the one before, but the window would
    // hold 1.5 callers on average. None waits for one.
    const all: Promise<number>[] = [];
    for (let bunch = 0; bunch < 20; bunch++) {
      for (let k = 1; k <= 3; k++) all.push(write(3 * bunch + k));
      await vi.advanceTimersByTimeAsync(0);
      expect(written.flat()).toHaveLength(3 * (bunch + 1));
      await vi.advanceTimersByTimeAsync(8);
    }
    expect(await Promise.all(all)).toHaveLength(60);
  });

  it("fillCallers: a window that holds too few at its end stays open until it holds fillCallers, up to fillMaxMs", async () => {
    vi.useFakeTimers();
    const options = { windowMs: 20, windowWhenBusy: true, busyWithinMs: 100, fillCallers: 4, fillMaxMs: 50 };
    const { write, written } = windowed(options);
    expect(await write(0)).toBe(0); // lone: at once
    // 140 callers a second, 7 ms apart: the window opened at 7 ms holds three
    // at 27 ms and stays open; the fourth, at 28 ms, fills it and goes with them.
    const paced: Promise<number>[] = [];
    for (const n of [1, 2, 3]) {
      await vi.advanceTimersByTimeAsync(7);
      paced.push(write(n));
    }
    await vi.advanceTimersByTimeAsync(7); // 28 ms: past the window's 20
    expect(written).toEqual([[0]]);
    paced.push(write(4));
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([[0], [1, 2, 3, 4]]);
    expect(await Promise.all(paced)).toEqual([1, 2, 3, 4]);
    // 33 a second, 30 ms apart: the window holds two when fillMaxMs ends it.
    const sparse: Promise<number>[] = [];
    for (const n of [5, 6]) {
      await vi.advanceTimersByTimeAsync(30);
      sparse.push(write(n));
    }
    await vi.advanceTimersByTimeAsync(19); // 49 ms after 5 opened the window
    expect(written).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(written).toEqual([[0], [1, 2, 3, 4], [5, 6]]);
    expect(await Promise.all(sparse)).toEqual([5, 6]);
  });

  it("fillCallers: a window that holds enough when windowMs ends is written then, as without it", async () => {
    vi.useFakeTimers();
    const { write, written } = windowed({ windowMs: 20, windowWhenBusy: true, busyWithinMs: 100, fillCallers: 4, fillMaxMs: 50 });
    expect(await write(0)).toBe(0);
    // 500 a second: the window opened at 2 ms holds ten when it ends at 22 ms.
    const busy: Promise<number>[] = [];
    for (let n = 1; n <= 10; n++) {
      await vi.advanceTimersByTimeAsync(2);
      busy.push(write(n));
    }
    await vi.advanceTimersByTimeAsync(1); // 21 ms
    expect(written).toEqual([[0]]);
    await vi.advanceTimersByTimeAsync(1); // 22 ms
    expect(written).toEqual([[0], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]);
    expect(await Promise.all(busy)).toHaveLength(10);
  });

  it("writes the callers that queued behind a write in flight as soon as it ends, without a window of their own", async () => {
    vi.useFakeTimers();
    const written: number[][] = [];
    let commit = () => {};
    const write = groupCommit<number, number>(
      async (items) => {
        written.push(items);
        // The database answers when the test says (a commit that takes long).
        await new Promise<void>((resolve) => (commit = resolve));
        return items;
      },
      { maxBatch: 50, windowMs: 5, windowWhenBusy: true },
    );
    const first = write(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([[1]]);
    // Two come close behind it while it is in flight, and the window one of them opened runs out.
    const queued = [write(2), write(3)];
    await vi.advanceTimersByTimeAsync(6);
    expect(written).toEqual([[1]]);
    commit();
    expect(await first).toBe(1);
    // Written at once, not 5 ms later.
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([[1], [2, 3]]);
    commit();
    expect(await Promise.all(queued)).toEqual([2, 3]);
  });
});
