import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { connectNats, decodeRunFinished, ensureStreams, natsNames, type NatsConnection } from "@longhaul/shared/nats";
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
