import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { withTimeout } from "./timers.js";
import type { JetStreamManager } from "@nats-io/jetstream";
import { Gauge, Registry, collectDefaultMetrics } from "prom-client";

export { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Options of {@link createRegistry}. */
export interface RegistryOptions {
  /**
   * Milliseconds between the event-loop delay samples behind
   * `nodejs_eventloop_lag_{min,max,mean,p50,p90,p99}_seconds`
   * (perf_hooks.monitorEventLoopDelay). Each sample is a timer that wakes the
   * process: at 10 ms an idle service wakes 100 times a second (~0.5 % of a
   * core here); at 100 ms, ~0.05 %. A stall longer than the resolution is
   * always seen; a shorter one only when it holds up a sample. @default 100
   * (prom-client's own default is 10)
   */
  eventLoopResolutionMs?: number;
}

/** A registry with the process metrics of one service. */
export function createRegistry(service: string, options: RegistryOptions = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: options.eventLoopResolutionMs ?? 100 });
  return registry;
}

/** How long a scrape waits for JetStream before leaving the consumer's gauges out. */
const CONSUMER_INFO_TIMEOUT_MS = 2_000;

/**
 * `longhaul_jetstream_consumer_pending{stream,consumer}` (messages not yet
 * delivered: the backlog) and `longhaul_jetstream_consumer_ack_pending`
 * (delivered, not yet acked) of durable consumers, read with
 * `$JS.API.CONSUMER.INFO` at scrape time. While JetStream does not answer, the
 * series are absent rather than stale. Call once per consumer. A consumer is
 * shared by every copy of a service: `exportIf` (the holder of a leader
 * lease) lets one copy export it, so that sums over copies hold.
 */
export function registerConsumerPending(
  registry: Registry,
  jsm: Pick<JetStreamManager, "consumers">,
  stream: string,
  consumer: string,
  options: { exportIf?: () => boolean } = {},
): void {
  const gauges = consumerGauges(registry);
  gauges.consumers.push({ jsm, stream, consumer, exportIf: options.exportIf ?? (() => true) });
}

type WatchedConsumer = { jsm: Pick<JetStreamManager, "consumers">; stream: string; consumer: string; exportIf: () => boolean };

const perRegistry = new WeakMap<Registry, { consumers: WatchedConsumer[] }>();

function consumerGauges(registry: Registry): { consumers: WatchedConsumer[] } {
  const known = perRegistry.get(registry);
  if (known) return known;
  const state = { consumers: [] as WatchedConsumer[] };
  perRegistry.set(registry, state);
  const labelNames = ["stream", "consumer"] as const;
  const ackPending = new Gauge({
    name: "longhaul_jetstream_consumer_ack_pending",
    help: "Messages a durable JetStream consumer delivered and that are not yet acked",
    labelNames,
    registers: [registry],
  });
  new Gauge({
    name: "longhaul_jetstream_consumer_pending",
    help: "Messages of its stream a durable JetStream consumer has not delivered yet (its backlog)",
    labelNames,
    registers: [registry],
    async collect() {
      this.reset();
      ackPending.reset();
      await Promise.all(
        state.consumers.map(async (c) => {
          if (!c.exportIf()) return;
          const info = await withTimeout(c.jsm.consumers.info(c.stream, c.consumer), CONSUMER_INFO_TIMEOUT_MS, `no answer within ${CONSUMER_INFO_TIMEOUT_MS} ms`).catch(() => undefined);
          if (!info) return;
          const labels = { stream: c.stream, consumer: c.consumer };
          this.set(labels, info.num_pending);
          ackPending.set(labels, info.num_ack_pending);
        }),
      );
    },
  });
  return state;
}

/** A running `/metrics` server. */
export interface MetricsServer {
  /** The port it listens on (the one asked for, or the one picked for 0). */
  port: number;
  /** Stops listening and ends the scrapers' keep-alive connections, which would keep it open. */
  close(): Promise<void>;
}

/** Serves `/metrics` on its own port, for services with no HTTP server (their health is gRPC health). */
export async function serveMetrics(registry: Registry, host: string, port: number): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    if (req.url === "/metrics") {
      registry.metrics().then(
        (body) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(body);
        },
        (err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        },
      );
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
