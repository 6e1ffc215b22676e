import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { connectNats, natsNames, type NatsConnection } from "@longhaul/shared/nats";
import { createTestNats } from "../../../../../tests/helpers/isolation.js";
import { settingsNotices } from "./settings-notices.js";

// Real NATS: two connections stand for two scheduler copies.
const log = createLogger("settings-notices-test", "silent");
let testNats: Awaited<ReturnType<typeof createTestNats>>;
let one: NatsConnection;
let two: NatsConnection;

beforeAll(async () => {
  testNats = await createTestNats();
  one = await connectNats(testNats.url, "settings-one", log);
  two = await connectNats(testNats.url, "settings-two", log);
});

afterAll(async () => {
  await one?.close();
  await two?.close();
  await testNats?.cleanup();
});

/** What a copy was told to forget. */
function holder() {
  const forgotten: string[] = [];
  return { forgotten, forget: (p: string) => forgotten.push(p), forgetAll: () => forgotten.push("*") };
}

describe("settings notices", () => {
  it("a change announced by one copy makes every copy, itself included, forget that project only", async () => {
    const names = natsNames(testNats.prefix);
    const a = holder();
    const b = holder();
    const noticesOne = settingsNotices(one, names, log);
    noticesOne.follow(a);
    settingsNotices(two, names, log).follow(b);
    await Promise.all([one.flush(), two.flush()]);

    noticesOne.announce("p1");
    noticesOne.announce("p2");
    await expect.poll(() => b.forgotten).toEqual(["p1", "p2"]);
    await expect.poll(() => a.forgotten).toEqual(["p1", "p2"]);
  });

  it("copies under another prefix hear nothing", async () => {
    const mine = holder();
    settingsNotices(two, natsNames(`${testNats.prefix}x`), log).follow(mine);
    await two.flush();
    settingsNotices(one, natsNames(testNats.prefix), log).announce("p1");
    await one.flush();
    await two.flush();
    expect(mine.forgotten).toEqual([]);
  });
});
