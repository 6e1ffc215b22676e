import type { Logger } from "pino";
import { createLogger } from "../logger.js";
import { shutdownTelemetry } from "../telemetry.js";
import { onShutdown, type Closer } from "./shutdown.js";

/** What a service's `start` hands back once it serves. */
export interface StartedService {
  /** Fields of the one "ready" log line (ports, limits). */
  ready: Record<string, unknown>;
  /** Stopped in this order on SIGTERM/SIGINT; telemetry is flushed after them. */
  closers: Closer[];
  /**
   * How long the closers may take before the process exits anyway.
   * @default 30_000
   */
  graceMs?: number;
}

/** How one service process starts: its name, its config, and what `start` wires. */
export interface ServiceOptions<C extends { LOG_LEVEL: string }> {
  /** The `service` field of every log line. */
  name: string;
  /** Parses and validates the environment; throws one error naming every bad variable. */
  loadConfig: (env: NodeJS.ProcessEnv) => C;
  /** Fields added to every log line (the invoker's id). */
  logFields?: (config: C) => Record<string, unknown>;
  /** Connects, builds the core, starts the servers; resolves once the service serves. */
  start: (config: C, log: Logger) => Promise<StartedService>;
}

/**
 * The one bootstrap of every service's main.ts: config → logger → `start` →
 * "ready" → shutdown on signals (first SIGTERM stops in order, a second exits
 * at once). A bad config or a failed start is logged with its cause and the
 * process exits 1, so an orchestrator sees a failed start, not a hang.
 */
export async function runService<C extends { LOG_LEVEL: string }>(options: ServiceOptions<C>): Promise<void> {
  let config: C;
  try {
    config = options.loadConfig(process.env);
  } catch (err) {
    // No level is known yet: the default one says it.
    createLogger(options.name).fatal({ err }, `${options.name} has a bad configuration`);
    process.exit(1);
  }
  const base = createLogger(options.name, config.LOG_LEVEL);
  const log = options.logFields ? base.child(options.logFields(config)) : base;
  try {
    const started = await options.start(config, log);
    onShutdown(log, [...started.closers, { name: "telemetry", close: shutdownTelemetry }], started.graceMs);
    log.info(started.ready, "ready");
  } catch (err) {
    log.fatal({ err }, `${options.name} failed to start`);
    await shutdownTelemetry().catch(() => undefined);
    process.exit(1);
  }
}
