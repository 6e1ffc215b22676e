// The JetStream limit's consuming side (forked by limits.mjs): a durable pull
// consumer that stamps each message's arrival on the shared clock and acks it.
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { now } from "../lib/clock.mjs";
import { serve } from "../lib/ipc.mjs";

const { natsUrl, stream, durable } = JSON.parse(process.env.BENCH_JS_SETTINGS ?? "{}");
const nc = await connect({ servers: natsUrl.split(",") });
const consumer = await jetstream(nc).consumers.get(stream, durable);
let ids = [];
let times = [];
const messages = await consumer.consume({ max_messages: 1000 });
(async () => {
  for await (const m of messages) {
    times.push(now());
    ids.push(m.json().id);
    m.ack();
  }
})().catch((err) => console.error("[jetstream consumer]", err));

process.once("SIGTERM", () => {
  messages.stop();
  nc.close().finally(() => process.exit(0));
});
serve({
  counts: () => ({ dispatched: ids.length, processed: ids.length }),
  collect() {
    const out = { ids, times: Float64Array.from(times) };
    ids = [];
    times = [];
    return { dispatch: out, processed: out };
  },
});
