import { runsPb } from "@longhaul/shared/proto";
import type { CallOptions, Caller, RunsPort } from "./ports.js";

/**
 * Recent outcome counts of one app ("Apps: ... recent outcome
 * counts"), counted from the run listing: RunService has no aggregate call,
 * so the ingress pages through the runs created in the window and counts
 * them by status, up to a bound that keeps one dashboard refresh cheap.
 */
export interface AppOutcomes {
  app: string;
  /** Start of the window: runs created since then are counted. */
  since: Date;
  /** Runs counted, by status name (only statuses that occur). */
  counts: Record<string, number>;
  total: number;
  /** True when the window holds more runs than were counted. */
  capped: boolean;
}

/** Options of {@link countAppOutcomes}. */
export interface OutcomeQuery {
  app: string;
  windowSeconds: number;
  /** Runs counted at most (in pages of 500, ListRuns's largest). @default 2000 */
  maxRuns?: number;
  now: Date;
  statusName: (s: runsPb.RunStatus) => string;
}

const PAGE = 500;

/** Counts the app's runs created in the last `windowSeconds`, by status. */
export async function countAppOutcomes(runs: RunsPort, caller: Caller, q: OutcomeQuery, opts?: CallOptions): Promise<AppOutcomes> {
  const since = new Date(q.now.getTime() - q.windowSeconds * 1000);
  const maxRuns = q.maxRuns ?? 2000;
  const counts: Record<string, number> = {};
  let total = 0;
  let cursor = "";
  let capped = false;
  for (;;) {
    const page = await runs.listRuns(
      caller,
      runsPb.ListRunsRequest.fromPartial({ app: q.app, createdAfter: since, limit: Math.min(PAGE, maxRuns - total), cursor }),
      opts,
    );
    for (const run of page.runs) {
      const name = q.statusName(run.status);
      counts[name] = (counts[name] ?? 0) + 1;
    }
    total += page.runs.length;
    cursor = page.nextCursor;
    if (!cursor) break;
    if (total >= maxRuns) {
      capped = true;
      break;
    }
  }
  return { app: q.app, since, counts, total, capped };
}
