import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { connectNats, decodeRunFinished, ensureStreams, natsNames, type NatsConnection } from "@longhaul/shared/nats";
import { createTestNats } from "../../../../../tests/helpers/isolation.js";
import { createEventBus } from "./event-bus.js";

// Real NATS: two connections stand for two scheduler copies, a third is a
// bystander that sees every change notice on the wire.
const log = createLogger("event-bus-test", "silent");
let testNats: Awaited<ReturnType<typeof createTestNats>>;
let one: NatsConnection;
let two: NatsConnection;
let wire: NatsConnection;
const onWire: string[] = [];

beforeAll(async () => {
  testNats = await createTestNats();
  one = await connectNats(testNats.url, "bus-one", log);
  two = await connectNats(testNats.url, "bus-two", log);
  wire = await connectNats(testNats.url, "bus-wire", log);
  wire.subscribe(`${testNats.prefix}.run.changed.>`, { callback: (_err, msg) => void onWire.push(msg.subject) });
  await wire.flush();
});

afterAll(async () => {
  for (const nc of [one, two, wire]) await nc?.close();
  await testNats?.cleanup();
});

const RUN_A = "0b9c6a1e-6f2d-4c59-9a51-4b6f5f0e2a11";
const RUN_B = "5d2f8e4c-1a3b-4c7d-8e9f-0a1b2c3d4e5f";

/** Sends what is buffered and waits until the server has handled it and what it relayed. */
async function settle(): Promise<void> {
  await Promise.all([one.flush(), two.flush()]);
  await wire.flush();
}

describe("run.changed notices", () => {
  it("are published only while some copy watches the project, and reach the watch on another copy", async () => {
    const names = natsNames(testNats.prefix);
    const busOne = createEventBus(one, names, log);
    const busTwo = createEventBus(two, names, log);
    await settle();

    // Nobody watches: nothing goes on the wire.
    busTwo.publishChanged("p1", RUN_A, "running");
    await settle();
    expect(onWire).toEqual([]);

    // A watch of p1's runs opens on copy one; copy two hears of it and publishes p1's changes, not p2's.
    const seen: string[] = [];
    const stop = busOne.watchProject("p1", (runId) => seen.push(runId));
    await busOne.watchesReady();
    await expect
      .poll(async () => {
        busTwo.publishChanged("p1", RUN_A, "succeeded");
        await settle();
        return seen.length;
      })
      .toBeGreaterThan(0);
    busTwo.publishChanged("p2", RUN_B, "succeeded");
    await settle();
    expect(onWire.every((s) => s.includes(".p1."))).toBe(true);
    expect(seen.every((r) => r === RUN_A)).toBe(true);

    // One run's watch counts for its project too, and the copy that holds it publishes at once.
    const runSeen: number[] = [];
    const stopRun = busOne.watchChanges("p3", RUN_B, () => runSeen.push(1));
    await busOne.watchesReady();
    busOne.publishChanged("p3", RUN_B, "running");
    await expect.poll(() => runSeen.length).toBe(1);
    stopRun();
    stop();
  });
});

describe("run.finished", () => {
  it("is stored once per run without waiting for an ack; a republish is acknowledged and stored again", async () => {
    const names = natsNames(testNats.prefix);
    const jsm = await ensureStreams(one, names);
    const bus = createEventBus(one, names, log);
    const run = { id: RUN_A, project: "p1", app: "a", status: "succeeded" };

    await bus.publishFinished(run);
    await bus.publishFinished(run); // the same event again (a retried completion): deduped
    await one.flush();
    await expect.poll(async () => (await jsm.streams.info(names.eventsStream)).state.messages).toBe(1);
    const first = await jsm.streams.getMessage(names.eventsStream, { seq: 1 });
    expect(decodeRunFinished(first!.data)).toMatchObject({ runId: RUN_A, republished: false });
    expect(first!.header?.get("Nats-Msg-Id")).toBe(`${RUN_A}:finished`);

    await bus.publishFinished(run, { republish: true });
    expect((await jsm.streams.info(names.eventsStream)).state.messages).toBe(2);
    const second = await jsm.streams.getMessage(names.eventsStream, { seq: 2 });
    expect(decodeRunFinished(second!.data)).toMatchObject({ runId: RUN_A, republished: true });
  });
});
