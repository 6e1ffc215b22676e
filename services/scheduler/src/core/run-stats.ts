import { LonghaulError } from "@longhaul/shared/errors";

/**
 * The windows of `GET /v1/stats` (the dashboard's overview): each is cut
 * into buckets of a fixed size, aligned to the epoch (UTC), the last one
 * holding now. The bucket sizes are also the rollup's levels
 * (adapters/pg/run-stats.ts), so a window's complete buckets are each one
 * rollup row.
 */
export const STATS_WINDOWS = {
  "1h": { bucketSeconds: 60, buckets: 60 },
  "24h": { bucketSeconds: 900, buckets: 96 },
  "7d": { bucketSeconds: 7200, buckets: 84 },
} as const;

export type StatsWindow = keyof typeof STATS_WINDOWS;

/** Bucket sizes of the rollup, finest first; each divides the next. */
export const STATS_LEVELS = [60, 900, 7200] as const;

/** What a stats read asks the store for. */
export interface StatsQuery {
  project: string;
  /** Undefined: every app of the project. */
  app: string | undefined;
  /** Undefined: both modes. */
  mode: "async" | "sync" | undefined;
  bucketSeconds: number;
  buckets: number;
}

/** One bucket of figures. Percentiles are undefined when no run of the bucket has the measure. */
export interface StatsBucket {
  start: Date;
  succeeded: number;
  failed: number;
  timedOut: number;
  cancelled: number;
  expired: number;
  queueWaitP50Ms: number | undefined;
  queueWaitP95Ms: number | undefined;
  runP50Ms: number | undefined;
  runP95Ms: number | undefined;
  webhookDelivered: number;
  webhookFailed: number;
}

export interface StatsResult {
  buckets: StatsBucket[];
  inFlight: number;
  queued: number;
  /** False when the query named an app the project does not have. */
  appExists: boolean;
}

/** The window and filters of a stats request, checked; a 400 naming the bad one. */
export function checkStatsQuery(
  project: string,
  raw: { window: string; app: string; mode: string },
): { window: StatsWindow; query: StatsQuery } {
  const window = (raw.window || "1h") as StatsWindow;
  if (!Object.hasOwn(STATS_WINDOWS, window)) {
    throw new LonghaulError("invalid_argument", `window: one of ${Object.keys(STATS_WINDOWS).join(", ")}`);
  }
  if (raw.mode && raw.mode !== "async" && raw.mode !== "sync") throw new LonghaulError("invalid_argument", "mode: async or sync");
  const { bucketSeconds, buckets } = STATS_WINDOWS[window];
  return {
    window,
    query: { project, app: raw.app || undefined, mode: (raw.mode || undefined) as StatsQuery["mode"], bucketSeconds, buckets },
  };
}
