import { connect, headers, TimeoutError, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { context, propagation, type Context } from "@opentelemetry/api";
import type { Logger } from "pino";
import type { NatsNames } from "./names.js";

export type { NatsConnection, MsgHdrs };

const SECOND_NS = 1_000_000_000;

/**
 * Splits NATS_URL (comma-separated servers) into the server list and the
 * credentials one of them carries (`nats://user:password@host:4222`, percent-
 * encoded as in any URL): nats.js reads no credentials from server URLs, and
 * the servers of deploy/k8s require a user.
 */
export function natsServers(url: string): { servers: string[]; user?: string; pass?: string } {
  let user: string | undefined;
  let pass: string | undefined;
  const servers = url
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => {
      if (!s.includes("@")) return s;
      const u = new URL(s.includes("://") ? s : `nats://${s}`);
      user ??= decodeURIComponent(u.username) || undefined;
      pass ??= decodeURIComponent(u.password) || undefined;
      return `${u.protocol}//${u.host}`;
    });
  return { servers, user, pass };
}

/**
 * Connects with endless reconnects (a NATS restart must not kill a service)
 * and logs status changes. `onStatus` learns whether the link is up.
 */
export async function connectNats(
  url: string,
  name: string,
  log: Logger,
  onStatus?: (connected: boolean) => void,
): Promise<NatsConnection> {
  const { servers, user, pass } = natsServers(url);
  const nc = await connect({
    servers,
    ...(user !== undefined ? { user, pass } : {}),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    pingInterval: 10_000,
    // An Error built per request for its stack trace, in case it fails,
    // was 1.6 % of the scheduler's CPU (one per JetStream publish).
    noAsyncTraces: true,
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        log.warn({ nats: s.type }, "nats disconnected");
        onStatus?.(false);
      } else if (s.type === "reconnect") {
        log.info({ nats: s.type }, "nats reconnected");
        onStatus?.(true);
      }
    }
  })().catch((err: unknown) => log.error({ err }, "nats status loop failed"));
  return nc;
}

/** Limits of the mesh's streams, from the common settings (LONGHAUL_NATS_REPLICAS, LONGHAUL_EVENTS_*). */
export interface StreamSettings {
  /** Replicas of each stream: 1 on one server, 3 on a cluster. @default 1 */
  replicas: number;
  /** `EVENTS` keeps at most this many bytes; past it the oldest events go. @default 1 GiB */
  eventsMaxBytes: number;
  /** `EVENTS` keeps an event at most this long. @default 86400 (a day) */
  eventsMaxAgeSeconds: number;
  /** Largest event `EVENTS` accepts; run.finished carries up to 64 KiB of answer (base64) inline. @default 256 KiB */
  eventsMaxMsgBytes: number;
}

export const DEFAULT_STREAM_SETTINGS: Readonly<StreamSettings> = Object.freeze({
  replicas: 1,
  eventsMaxBytes: 1024 * 1024 * 1024,
  eventsMaxAgeSeconds: 86_400,
  eventsMaxMsgBytes: 256 * 1024,
});

/** The stream settings of a service's config. */
export function streamSettings(config: {
  LONGHAUL_NATS_REPLICAS: number;
  LONGHAUL_EVENTS_MAX_BYTES: number;
  LONGHAUL_EVENTS_MAX_AGE_SECONDS: number;
  LONGHAUL_EVENTS_MAX_MSG_BYTES: number;
}): StreamSettings {
  return {
    replicas: config.LONGHAUL_NATS_REPLICAS,
    eventsMaxBytes: config.LONGHAUL_EVENTS_MAX_BYTES,
    eventsMaxAgeSeconds: config.LONGHAUL_EVENTS_MAX_AGE_SECONDS,
    eventsMaxMsgBytes: config.LONGHAUL_EVENTS_MAX_MSG_BYTES,
  };
}

/**
 * Creates or updates the mesh's streams; safe to run from every service at
 * every start (every copy must be given the same settings, or the last to
 * start wins). Dispatch is a work queue (one invoker takes each message).
 * Events are bounded by size and age, the oldest dropped first: a notifier
 * that is down misses what was dropped, and Postgres decides what is still
 * owed: the scheduler republishes the `run.finished` of every run whose
 * webhook no notifier took (SCHEDULER_WEBHOOK_REPUBLISH_SECONDS).
 */
export async function ensureStreams(
  nc: NatsConnection,
  names: NatsNames,
  settings: Partial<StreamSettings> = {},
): Promise<JetStreamManager> {
  const { replicas, eventsMaxBytes, eventsMaxAgeSeconds, eventsMaxMsgBytes } = { ...DEFAULT_STREAM_SETTINGS, ...settings };
  if (eventsMaxMsgBytes > eventsMaxBytes) {
    throw new Error(`LONGHAUL_EVENTS_MAX_MSG_BYTES (${eventsMaxMsgBytes}) is larger than LONGHAUL_EVENTS_MAX_BYTES (${eventsMaxBytes})`);
  }
  const jsm = await jetstreamManager(nc);
  const streams = [
    {
      name: names.dispatchStream,
      subjects: [names.dispatchAll],
      retention: RetentionPolicy.Workqueue,
      max_age: 0,
    },
    {
      name: names.eventsStream,
      subjects: [names.finishedAll],
      retention: RetentionPolicy.Limits,
      max_age: eventsMaxAgeSeconds * SECOND_NS,
      max_bytes: eventsMaxBytes,
      max_msg_size: eventsMaxMsgBytes,
    },
  ];
  for (const s of streams) {
    const config = {
      ...s,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      duplicate_window: 120 * SECOND_NS,
      num_replicas: replicas,
    };
    // Two copies starting together on a fresh cluster race to create the
    // stream, and a replicated create may go unanswered while its placement
    // settles (seen with 3 replicas: npm run chaos): look again, a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        try {
          await jsm.streams.info(s.name);
          await jsm.streams.update(s.name, config);
        } catch (err) {
          if (!isNotFound(err)) throw err;
          await jsm.streams.add(config);
        }
        break;
      } catch (err) {
        if (attempt >= STREAM_SETUP_ATTEMPTS || !isRetryableSetupError(err)) throw err;
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
  }
  return jsm;
}

/** Tries of a stream's creation or update before start-up fails. */
const STREAM_SETUP_ATTEMPTS = 5;

/**
 * JetStream API error codes (nats-server's errors.json) that a stream set-up
 * retries: another copy created the stream first with a placement still
 * settling (JSStreamNameExistErr), or the cluster has no peers for it yet
 * (JSClusterNoPeersErr). The library names only a few codes (JetStreamApiCodes).
 */
const STREAM_NAME_IN_USE = 10058;
const NO_SUITABLE_PEERS = 10005;

/** A timeout, a stream another copy created first, or a placement not settled yet: worth another look. */
function isRetryableSetupError(err: unknown): boolean {
  if (err instanceof TimeoutError) return true;
  return err instanceof JetStreamApiError && (err.code === STREAM_NAME_IN_USE || err.code === NO_SUITABLE_PEERS || err.status === 408);
}

/** The stream or consumer asked about does not exist. */
function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.StreamNotFound || err.code === JetStreamApiCodes.ConsumerNotFound);
}

/**
 * Creates a durable pull consumer if missing (idempotent). `ackWaitSeconds`
 * bounds how long a message may be held before redelivery; long work never
 * depends on it, since ownership lives in Postgres.
 */
export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  filterSubject: string,
  ackWaitSeconds: number,
): Promise<void> {
  const editable = { ack_wait: ackWaitSeconds * SECOND_NS, max_deliver: -1, max_ack_pending: 20_000 };
  const existing = await jsm.consumers.info(stream, durable).catch((err: unknown) => {
    if (isNotFound(err)) return undefined;
    throw err;
  });
  if (!existing) {
    await jsm.consumers.add(stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: filterSubject,
      ...editable,
    });
    return;
  }
  // A consumer made by an older version keeps its position; its editable
  // settings follow this version's.
  const c = existing.config;
  if (c.ack_wait !== editable.ack_wait || c.max_ack_pending !== editable.max_ack_pending) {
    await jsm.consumers.update(stream, durable, editable);
  }
}

/** Headers carrying the active W3C trace context. */
export function traceHeaders(ctx: Context = context.active()): MsgHdrs {
  const h = headers();
  propagation.inject(ctx, h, { set: (carrier, key, value) => carrier.set(key, value) });
  return h;
}

/** The trace context a message carried, to continue its trace. */
export function contextFromHeaders(h: MsgHdrs | undefined): Context {
  if (!h) return context.active();
  return propagation.extract(context.active(), h, {
    get: (carrier, key) => carrier.get(key) || undefined,
    keys: (carrier) => carrier.keys(),
  });
}
