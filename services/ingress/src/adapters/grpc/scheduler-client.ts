import {
  Metadata,
  makeGenericClientConstructor,
  status as GrpcStatus,
  type CallOptions,
  type ChannelCredentials,
  type Client,
  type ClientOptions,
  type ClientUnaryCall,
  type ServiceError,
} from "@grpc/grpc-js";
import { hash, randomUUID } from "node:crypto";
import { isIP } from "node:net";
import { service as healthService } from "grpc-health-check";
import { setTimeout } from "node:timers/promises";
import { LonghaulError } from "@longhaul/shared/errors";
import { callUnary, createClient, fromGrpcError, internalMetadata, type GrpcTls } from "@longhaul/shared/grpc";
import type { Logger } from "@longhaul/shared/logger";
import { appsPb, runsPb, schedulerPb } from "@longhaul/shared/proto";
import { injectTrace } from "@longhaul/shared/telemetry";
import type { AppsPort, Caller, HealthPort, KeyResolver, RunsPort, RunsWatchItem, Scope, SignedResultsPort } from "../../core/ports.js";
import { createSubmitStreams } from "./submit-streams.js";

/** Deadline of the quick calls (SubmitRun commits before it answers). */
const CALL_TIMEOUT_MS = 10_000;
/** RetryRuns submits up to a thousand runs in one call. */
const BULK_TIMEOUT_MS = 120_000;
/** Slack on top of a long-poll's wait, for the scheduler to answer after it. */
const LONG_POLL_SLACK_MS = 5_000;
const HEALTH_TIMEOUT_MS = 2_000;

/** `authorization` metadata: public services resolve the caller's key themselves. */
function callerMetadata(caller: Caller): Metadata {
  const md = new Metadata();
  md.set("authorization", caller.authorization);
  return md;
}

/** The same for a stream, with the trace context (callUnary adds it to unary calls). */
function streamMetadata(caller: Caller): Metadata {
  const md = callerMetadata(caller);
  injectTrace((name, value) => md.set(name, value));
  return md;
}

/** grpc.health.v1.Health, from grpc-health-check's own definition (its enums as strings). */
const HealthClient = makeGenericClientConstructor(healthService, "grpc.health.v1.Health") as unknown as new (
  address: string,
  creds: ChannelCredentials,
  options?: Partial<ClientOptions>,
) => HealthCheckClient;

type HealthCheckClient = Client & {
  check(
    request: { service: string },
    metadata: Metadata,
    options: Partial<CallOptions>,
    callback: (err: ServiceError | null, res: { status: string }) => void,
  ): ClientUnaryCall;
};

/** The scheduler as the gateway sees it: key resolution, runs, apps, health. */
export interface SchedulerClients {
  keys: KeyResolver;
  runs: RunsPort;
  signedResults: SignedResultsPort;
  apps: AppsPort;
  health: HealthPort;
  close(): void;
}

/**
 * Reads that a copy going down mid-call may leave unanswered: sent again
 * (grpc-js retry policy, on UNAVAILABLE) to another copy.
 */
const RETRIED = [
  runsPb.RunServiceService.getRun.path,
  runsPb.RunServiceService.getRunResult.path,
  runsPb.RunServiceService.listRuns.path,
  runsPb.RunServiceService.getRunInput.path,
  runsPb.RunServiceService.getRunStats.path,
  runsPb.RunServiceService.watchRun.path,
  runsPb.RunServiceService.watchRuns.path,
  appsPb.AppServiceService.getApp.path,
  appsPb.AppServiceService.listApps.path,
  schedulerPb.SchedulerInternalServiceService.authenticate.path,
  schedulerPb.SchedulerInternalServiceService.getDeliveryInput.path,
  "/grpc.health.v1.Health/Check",
];

/**
 * Opens of a WatchRun or WatchRuns stream in a row that may end UNAVAILABLE
 * before it answers (grpc-js's own retries come first: RETRIED), and the
 * pause before each, times its number in the row.
 */
const WATCH_REOPEN_TRIES = 3;
const WATCH_REOPEN_DELAY_MS = 100;

/**
 * Runs a project feed re-opened on another copy asks to catch up on (the
 * ones the client named and the latest ones it was sent): WatchRuns takes
 * 1000 at most.
 */
const FEED_CATCH_UP_RUNS = 1000;
/** How far before its stream ended a re-opened feed asks for the runs created: Postgres stamps a run at its transaction's start. */
const FEED_CREATED_OVERLAP_MS = 5_000;

/**
 * Runs `stream` (a watch on one scheduler copy; it calls `heard` on each
 * message) and, when it ends UNAVAILABLE (a copy going away: shutting down,
 * or its connection lost), runs it again (`again` true) on another copy: up
 * to WATCH_REOPEN_TRIES times in a row without a message, with a growing
 * pause, only while `canReopen()` and before `deadline`. Any other end is the
 * caller's.
 */
async function* onAnotherCopy<T>(
  deadline: number,
  signal: AbortSignal,
  canReopen: () => boolean,
  stream: (again: boolean, heard: () => void) => AsyncIterable<T>,
): AsyncGenerator<T> {
  for (let idle = 0, again = false; ; again = true) {
    let heard = false;
    try {
      yield* stream(again, () => (heard = true));
      return;
    } catch (err) {
      idle = heard ? 1 : idle + 1;
      const reopen = err instanceof LonghaulError && err.code === "unavailable" && idle <= WATCH_REOPEN_TRIES && !signal.aborted && canReopen();
      if (!reopen || Date.now() + WATCH_REOPEN_DELAY_MS * idle >= deadline) throw err;
      await setTimeout(WATCH_REOPEN_DELAY_MS * idle);
      if (signal.aborted || !canReopen()) return;
    }
  }
}

/** A run as sent to a watcher, in a few bytes: the same state twice has the same digest. */
const runDigest = (run: runsPb.Run) => hash("sha1", runsPb.Run.encode(run).finish(), "base64");

/** Tries of a submit when a scheduler copy is unavailable (each with the same run id). */
const SUBMIT_TRIES = 3;
const SUBMIT_RETRY_DELAY_MS = 100;

/** The answer to a submit once the clients are closed (the gateway is shutting down): a 503, as the scheduler's own refusal. */
const CLOSED = () => new LonghaulError("unavailable", "the gateway is shutting down; try again");

/**
 * Submits, trying another scheduler copy when one is unavailable. A submit
 * that reached a scheduler which then went away may have committed there;
 * every try carries the same run id (chosen here when the caller chose
 * none), so a second try answers with that run if it was stored, and never
 * makes a second one. No try starts once `closed()`: its clients are shut
 * down, and grpc-js would throw a plain Error (a 500) on their channels.
 */
async function submitWithFailover<T>(
  req: runsPb.SubmitRunRequest,
  call: (req: runsPb.SubmitRunRequest) => Promise<T>,
  closed: () => boolean,
): Promise<T> {
  const once = req.runId ? req : { ...req, runId: randomUUID() };
  for (let attempt = 1; ; attempt++) {
    if (closed()) throw CLOSED();
    try {
      return await call(once);
    } catch (err) {
      const retry = attempt < SUBMIT_TRIES && err instanceof LonghaulError && err.code === "unavailable";
      if (!retry) throw err;
      await setTimeout(SUBMIT_RETRY_DELAY_MS * attempt);
    }
  }
}

/** Options of {@link createSchedulerClients}. */
export interface SchedulerClientsOptions {
  /** Connect with TLS; absent: plaintext. */
  tls?: GrpcTls | undefined;
  log: Logger;
  /**
   * SubmitRuns streams kept open for submits; 0 sends every submit as a
   * unary RunService/SubmitRun call. @default {@link defaultSubmitStreams}
   */
  submitStreams?: number | undefined;
}

/**
 * SubmitRuns streams for an address list: one per address listed (round-robin
 * puts the streams opened together on different copies), two for one DNS
 * name (its copies are not known here; streams are renewed every few seconds
 * and spread over them as they come and go).
 */
export function defaultSubmitStreams(addresses: string): number {
  const entries = addresses.split(",").map((e) => e.trim()).filter((e) => e !== "");
  if (entries.length !== 1) return Math.max(1, entries.length);
  const host = /^(?:ipv[46]:)?\[?([^\]]*?)\]?:\d+$/.exec(entries[0]!)?.[1] ?? "";
  return isIP(host) ? 1 : 2;
}

/**
 * Clients of the scheduler's public and internal services at `addresses`
 * (every copy; calls are spread round-robin over those that answer), over TLS
 * when `options.tls` is given. Submits travel as messages on SubmitRuns
 * streams (adapters/grpc/submit-streams.ts), or as unary calls when no stream
 * can take them at once.
 */
export function createSchedulerClients(addresses: string, internalToken: string, options: SchedulerClientsOptions): SchedulerClients {
  const tls = options.tls;
  const runClient = createClient(runsPb.RunServiceClient, addresses, { retry: RETRIED, tls });
  const appClient = createClient(appsPb.AppServiceClient, addresses, { retry: RETRIED, tls });
  const internalClient = createClient(schedulerPb.SchedulerInternalServiceClient, addresses, { retry: RETRIED, tls });
  const healthClient = createClient(HealthClient, addresses, { retry: RETRIED, tls });
  let closed = false;
  // On the internal client's channel: round-robin puts each new stream on the next copy.
  const submitStreams = createSubmitStreams({
    open: () => internalClient.submitRuns(internalMetadata(internalToken)),
    channel: internalClient.getChannel(),
    streams: options.submitStreams ?? defaultSubmitStreams(addresses),
    log: options.log,
  });

  const keys: KeyResolver = {
    async resolve(apiKey) {
      const res = await callUnary(
        internalClient.authenticate.bind(internalClient),
        { apiKey },
        internalMetadata(internalToken),
        CALL_TIMEOUT_MS,
      );
      if (!res.project) throw new LonghaulError("unauthenticated", "invalid API key");
      const scopes = res.scopes.filter((x): x is Scope => x === "read" || x === "invoke" || x === "admin");
      return { project: res.project, scopes };
    },
  };

  const runs: RunsPort = {
    submitRun: (caller, req, opts) =>
      submitWithFailover(
        req,
        (once) =>
          submitStreams.submit(caller.authorization, once, CALL_TIMEOUT_MS, opts?.signal) ??
          callUnary(runClient.submitRun.bind(runClient), once, callerMetadata(caller), CALL_TIMEOUT_MS, opts?.signal),
        () => closed,
      ),
    async getRun(caller, runId, waitSeconds, opts) {
      const res = await callUnary(
        runClient.getRun.bind(runClient),
        { runId, waitSeconds },
        callerMetadata(caller),
        waitSeconds * 1000 + (waitSeconds > 0 ? LONG_POLL_SLACK_MS : CALL_TIMEOUT_MS),
        opts?.signal,
      );
      return requireRun(res.run);
    },
    getRunResult: (caller, runId, opts) =>
      callUnary(runClient.getRunResult.bind(runClient), { runId }, callerMetadata(caller), CALL_TIMEOUT_MS, opts?.signal),
    listRuns: (caller, req, opts) =>
      callUnary(runClient.listRuns.bind(runClient), req, callerMetadata(caller), CALL_TIMEOUT_MS, opts?.signal),
    async cancelRun(caller, runId, opts) {
      const res = await callUnary(
        runClient.cancelRun.bind(runClient),
        { runId },
        callerMetadata(caller),
        CALL_TIMEOUT_MS,
        opts?.signal,
      );
      return requireRun(res.run);
    },
    async eraseRun(caller, runId, opts) {
      const res = await callUnary(runClient.eraseRun.bind(runClient), { runId }, callerMetadata(caller), CALL_TIMEOUT_MS, opts?.signal);
      return requireRun(res.run);
    },
    async retryRun(caller, runId, opts) {
      const res = await callUnary(
        runClient.retryRun.bind(runClient),
        { runId, queueTtlSeconds: opts?.queueTtlSeconds ?? 0 },
        callerMetadata(caller),
        CALL_TIMEOUT_MS,
        opts?.signal,
      );
      return res.runId;
    },
    retryRuns: (caller, req, opts) =>
      // A bulk retry may submit a thousand runs: more time than one call.
      callUnary(runClient.retryRuns.bind(runClient), req, callerMetadata(caller), BULK_TIMEOUT_MS, opts?.signal),
    getRunInput: (caller, runId, opts) =>
      callUnary(runClient.getRunInput.bind(runClient), { runId }, callerMetadata(caller), CALL_TIMEOUT_MS, opts?.signal),
    getRunStats: (caller, req, opts) =>
      callUnary(runClient.getRunStats.bind(runClient), req, callerMetadata(caller), CALL_TIMEOUT_MS, opts?.signal),
    async *watchRun(caller, runId, maxSeconds, signal) {
      const deadline = Date.now() + maxSeconds * 1000;
      /** The run as last sent: a copy watched anew starts with the run as it is, perhaps that same state. */
      let last: string | undefined;
      // WatchRun starts with the run's current state, so nothing in between is lost.
      yield* onAnotherCopy(deadline, signal, () => !closed, async function* (_again, heard) {
        const call = runClient.watchRun({ runId }, streamMetadata(caller), { deadline });
        for await (const msg of streamOf<runsPb.WatchRunResponse>(call, signal)) {
          heard();
          if (!msg.run) continue;
          const digest = runDigest(msg.run);
          if (last === digest) continue;
          last = digest;
          yield msg.run;
        }
      });
    },
    async *watchRuns(caller, req, maxSeconds, signal): AsyncIterable<RunsWatchItem> {
      const deadline = Date.now() + maxSeconds * 1000;
      /** Runs sent on this feed, oldest first, each with a digest of the run as last sent: a copy watched anew catches up on them. */
      const sent = new Map<string, string>();
      let live = false;
      let endedAt = 0;
      yield* onAnotherCopy(
        deadline,
        signal,
        // A feed that was never live failed to open: an ordinary error for its caller.
        () => live && !closed,
        async function* (again, heard) {
          // Again on another copy, the stream catches up on what changed while
          // no copy listened: the runs the client named and the runs this feed
          // sent, as they are now (what did not change is not sent again), and
          // the runs created since shortly before the last stream ended.
          const named = new Set(req.runIds);
          const seen = [...sent.keys()].filter((id) => !named.has(id));
          const request = again
            ? {
                app: req.app,
                runIds: [...named, ...seen.slice(Math.max(0, seen.length - (FEED_CATCH_UP_RUNS - named.size)))],
                createdAfter: new Date(endedAt - FEED_CREATED_OVERLAP_MS),
              }
            : req;
          const call = runClient.watchRuns(request, streamMetadata(caller), { deadline });
          let listened = false;
          try {
            // The first message carries no run: the scheduler listens from then on.
            for await (const msg of streamOf<runsPb.WatchRunsResponse>(call, signal)) {
              heard();
              listened = true;
              if (!msg.run) {
                if (!live) yield { kind: "live" } as const;
                live = true;
                continue;
              }
              const digest = runDigest(msg.run);
              if (sent.get(msg.run.id) === digest) continue;
              sent.delete(msg.run.id);
              sent.set(msg.run.id, digest);
              if (sent.size > FEED_CATCH_UP_RUNS) sent.delete(sent.keys().next().value!);
              yield { kind: "run", run: msg.run } as const;
            }
          } finally {
            // A stream that never listened leaves the catch-up where the last one ended.
            if (listened) endedAt = Date.now();
          }
        },
      );
    },
  };

  // A signed link carries no key, so the result is read through the internal
  // GetDeliveryInput (by run id, read-only): the link's HMAC is the authorisation.
  const signedResults: SignedResultsPort = {
    async getResult(runId, opts) {
      const res = await callUnary(
        internalClient.getDeliveryInput.bind(internalClient),
        { runId },
        internalMetadata(internalToken),
        CALL_TIMEOUT_MS,
        opts?.signal,
      );
      return {
        runId: res.runId,
        project: res.project,
        status: res.status,
        statusCode: res.statusCode,
        contentType: res.contentType,
        body: res.body,
        bodyTruncated: res.bodyTruncated,
        bodyGone: res.bodyGone,
      };
    },
  };

  const apps: AppsPort = {
    async putApp(caller, app, opts) {
      const res = await callUnary(appClient.putApp.bind(appClient), { app }, callerMetadata(caller), CALL_TIMEOUT_MS, opts?.signal);
      if (!res.app) throw new LonghaulError("internal", "internal error", { cause: new Error("PutApp returned no app") });
      return { app: res.app, created: res.created };
    },
    async getApp(caller, name, opts) {
      const res = await callUnary(appClient.getApp.bind(appClient), { name }, callerMetadata(caller), CALL_TIMEOUT_MS, opts?.signal);
      if (!res.app) throw new LonghaulError("not_found", `app ${name} not found`);
      return res.app;
    },
    async deleteApp(caller, name, opts) {
      await callUnary(appClient.deleteApp.bind(appClient), { name }, callerMetadata(caller), CALL_TIMEOUT_MS, opts?.signal);
    },
    async listApps(caller, opts) {
      const res = await callUnary(appClient.listApps.bind(appClient), {}, callerMetadata(caller), CALL_TIMEOUT_MS, opts?.signal);
      return res.apps;
    },
    async pauseApp(caller, name, opts) {
      const res = await callUnary(appClient.pauseApp.bind(appClient), { name }, callerMetadata(caller), CALL_TIMEOUT_MS, opts?.signal);
      if (!res.app) throw new LonghaulError("not_found", `app ${name} not found`);
      return res.app;
    },
    async resumeApp(caller, name, opts) {
      const res = await callUnary(appClient.resumeApp.bind(appClient), { name }, callerMetadata(caller), CALL_TIMEOUT_MS, opts?.signal);
      if (!res.app) throw new LonghaulError("not_found", `app ${name} not found`);
      return res.app;
    },
  };

  const health: HealthPort = {
    async schedulerServing() {
      try {
        const res = await callUnary(healthClient.check.bind(healthClient), { service: "" }, new Metadata(), HEALTH_TIMEOUT_MS);
        return res.status === "SERVING";
      } catch {
        // Unreachable or failing: not serving. The answer itself is the report.
        return false;
      }
    },
  };

  return {
    keys,
    runs,
    signedResults,
    apps,
    health,
    close() {
      closed = true;
      submitStreams.close();
      for (const c of [runClient, appClient, internalClient, healthClient]) c.close();
    },
  };
}

/**
 * The messages of a server stream until it ends; `signal` cancels it. The
 * stream's own deadline, or our cancel, is an ordinary end; any other
 * failure is thrown as a LonghaulError.
 */
async function* streamOf<T>(call: AsyncIterable<unknown> & { cancel(): void }, signal: AbortSignal): AsyncGenerator<T> {
  const cancel = () => call.cancel();
  signal.addEventListener("abort", cancel, { once: true });
  if (signal.aborted) cancel();
  try {
    for await (const msg of call) yield msg as T;
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === GrpcStatus.DEADLINE_EXCEEDED || (code === GrpcStatus.CANCELLED && signal.aborted)) return;
    throw fromGrpcError(err);
  } finally {
    signal.removeEventListener("abort", cancel);
    call.cancel();
  }
}

function requireRun(run: runsPb.Run | undefined): runsPb.Run {
  if (!run) throw new LonghaulError("internal", "internal error", { cause: new Error("scheduler answered without a run") });
  return run;
}
