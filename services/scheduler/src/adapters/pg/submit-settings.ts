import { CompiledQuery, type Kysely } from "kysely";
import { LRUCache } from "lru-cache";
import { preparedStatement } from "@longhaul/shared/db";
import type { AppSettings } from "../../core/model.js";
import { joinedApp, joinedAppColumns, type JoinedAppRow } from "./run-queries.js";
import type { SchedulerDb } from "./schema.js";

/** What a submit needs to know before it may take the fast path: the project's limits and the app. */
export interface SubmitSettings {
  /** The project is live and sets no limit (submit rate, in flight, queued). */
  unlimited: boolean;
  /** Undefined: no such app. */
  app: AppSettings | undefined;
}

/** The project's limits and the app, for a submit: the text fixed and prepared. */
const PROJECT_AND_APP = preparedStatement("lh_project_and_app", `
  select projects.deleted_at, projects.submits_per_second, projects.max_in_flight, projects.max_queued,
    ${joinedAppColumns.join(", ")}
  from projects left join apps on apps.project_id = projects.id and apps.name = $2
  where projects.id = $1`);

type ProjectAndAppRow = JoinedAppRow & {
  deleted_at: Date | null;
  submits_per_second: number | string;
  max_in_flight: number;
  max_queued: number;
};

/** Reads a submit's settings; undefined when the project does not exist. */
export async function readSubmitSettings(db: Kysely<SchedulerDb>, project: string, app: string): Promise<SubmitSettings | undefined> {
  const { rows } = await db.executeQuery<ProjectAndAppRow>(CompiledQuery.raw(PROJECT_AND_APP, [project, app]));
  const found = rows[0];
  if (!found) return undefined;
  return {
    unlimited: !found.deleted_at && Number(found.submits_per_second) === 0 && found.max_in_flight === 0 && found.max_queued === 0,
    app: joinedApp(found),
  };
}

/**
 * Submit settings held in memory for a few seconds, so that a submit costs
 * one statement (the insert) instead of two. Only the fast path trusts them:
 * a run that meets a limit, a paused app or a key takes the transaction,
 * which reads everything again under its locks.
 *
 * Whoever changes an app or a project's limits calls `changed` (this copy
 * forgets at once and `announce` tells the other copies, which call
 * `forget`); `ttlMs` bounds how long a lost notice can leave a copy behind,
 * and `forgetAll` after a broker outage drops whatever a notice missed.
 */
export interface SubmitSettingsCache {
  get(project: string, app: string): Promise<SubmitSettings | undefined>;
  changed(project: string): void;
  forget(project: string): void;
  forgetAll(): void;
}

export function createSubmitSettingsCache(
  read: (project: string, app: string) => Promise<SubmitSettings | undefined>,
  options: { ttlMs: number; max?: number; announce?: (project: string) => void },
): SubmitSettingsCache {
  const cache = new LRUCache<string, SubmitSettings>({ max: options.max ?? 10_000, ttl: options.ttlMs });
  // Concurrent first submits to one app share a single read.
  const reading = new Map<string, Promise<SubmitSettings | undefined>>();
  // Changes seen per project (and in all): a read that a change overtook is
  // answered to its callers (as a read just before the change would be) but
  // never kept, and later callers start a read of their own.
  const changes = new Map<string, number>();
  let outages = 0;
  const changesOf = (project: string) => (changes.get(project) ?? 0) + outages;
  // A tab cannot be in a project or app name (names are checked before a submit reads).
  const key = (project: string, app: string) => `${project}\t${app}`;

  function forget(project: string): void {
    changes.set(project, (changes.get(project) ?? 0) + 1);
    const prefix = `${project}\t`;
    for (const k of [...cache.keys()]) if (k.startsWith(prefix)) cache.delete(k);
    for (const k of [...reading.keys()]) if (k.startsWith(prefix)) reading.delete(k);
  }

  return {
    get(project, app) {
      const k = key(project, app);
      const held = cache.get(k);
      if (held) return Promise.resolve(held);
      let pending = reading.get(k);
      if (!pending) {
        const seen = changesOf(project);
        pending = read(project, app).then(
          (settings) => {
            if (reading.get(k) === pending) reading.delete(k);
            if (settings && changesOf(project) === seen) cache.set(k, settings);
            return settings;
          },
          (err: unknown) => {
            if (reading.get(k) === pending) reading.delete(k);
            throw err;
          },
        );
        reading.set(k, pending);
      }
      return pending;
    },
    changed(project) {
      forget(project);
      options.announce?.(project);
    },
    forget,
    forgetAll() {
      outages++;
      cache.clear();
      reading.clear();
    },
  };
}
