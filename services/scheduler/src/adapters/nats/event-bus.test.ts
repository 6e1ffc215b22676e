import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { connectNats, decodeRunChanged, decodeRunFinished, ensureStreams, natsNames, type NatsConnection } from "@longhaul/shared/nats";
import { createTestNats } from "../../../../../tests/helpers/isolation.js";
import { createEventBus } from "./event-bus.js";

// Real NATS: the scheduler's event bus against a JetStream stream of the test's own.
const log = createLogger("event-bus-test", "silent");
let testNats: Awaited<ReturnType<typeof createTestNats>>;
let one: NatsConnection;

beforeAll(async () => {
  testNats = await createTestNats();
  one = await connectNats(testNats.url, "bus-one", log);
});

afterAll(async () => {
  await one?.close();
  await testNats?.cleanup();
});

const RUN_A = "0b9c6a1e-6f2d-4c59-9a51-4b6f5f0e2a11";
const RUN_B = "5d2f8e4c-1a3b-4c7d-8e9f-0a1b2c3d4e5f";

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

describe("run.changed", () => {
  it("gathers the notices of a short window into one batch, a run's latest replacing its earlier one, and sends them before run.finished", async () => {
    const names = natsNames(testNats.prefix);
    await ensureStreams(one, names);
    const bus = createEventBus(one, names, log);
    const watcher = await connectNats(testNats.url, "bus-watcher", log);
    const seen: string[] = [];
    watcher.subscribe(`${testNats.prefix}.run.changed.>`, {
      callback: (_err, msg) => {
        const n = decodeRunChanged(msg.data)!;
        seen.push(`${n.runId === RUN_A ? "A" : "B"}:${n.status}`);
      },
    });
    await watcher.flush();

    // Within one window: A's second notice replaces its first; B's stays.
    bus.publishChanged("p1", RUN_A, "running");
    bus.publishChanged("p1", RUN_B, "queued");
    bus.publishChanged("p1", RUN_A, "succeeded");
    expect(seen).toEqual([]);
    await expect.poll(() => seen).toEqual(["A:succeeded", "B:queued"]);

    // A notice still waiting leaves with the next run.finished, ahead of it.
    seen.length = 0;
    bus.publishChanged("p1", RUN_B, "succeeded");
    await bus.publishFinished({ id: RUN_B, project: "p1", app: "a", status: "succeeded" });
    await one.flush();
    await watcher.flush();
    expect(seen).toEqual(["B:succeeded"]);

    // At shutdown the waiting notices are sent at once, not when their window ends.
    seen.length = 0;
    bus.publishChanged("p1", RUN_A, "cancelled");
    bus.sendWaiting();
    await one.flush();
    await watcher.flush();
    expect(seen).toEqual(["A:cancelled"]);
    await watcher.close();
  });
});
