import { LonghaulError } from "@longhaul/shared/errors";

/** What a project key may do (DESIGN.md "Projects, keys and limits"). */
export const SCOPES = ["read", "invoke", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

/** A project's limits; 0 is unlimited. */
export interface ProjectLimits {
  submitsPerSecond: number;
  burst: number;
  maxInFlight: number;
  maxQueued: number;
  maxWatchStreams: number;
}

export const UNLIMITED: Readonly<ProjectLimits> = Object.freeze({
  submitsPerSecond: 0,
  burst: 0,
  maxInFlight: 0,
  maxQueued: 0,
  maxWatchStreams: 0,
});

/** Today's figures of a project (UTC day). */
export interface ProjectUsage {
  runsToday: number;
  inFlight: number;
  queued: number;
  throttledToday: number;
}

export interface ProjectRecord {
  name: string;
  createdAt: Date;
  limits: ProjectLimits;
}

/** A key as listings show it: never its secret. */
export interface KeyRecord {
  id: string;
  project: string;
  name: string;
  scopes: Scope[];
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
}

/** The caller behind a project key. */
export interface KeyCaller {
  project: string;
  scopes: readonly Scope[];
  keyId: string;
}

/** Throws `permission_denied` (403) unless the caller's key has `scope`. */
export function requireScope(caller: KeyCaller, scope: Scope, what: string): void {
  if (!caller.scopes.includes(scope)) {
    throw new LonghaulError("permission_denied", `${what} needs the '${scope}' scope; this key has ${caller.scopes.length ? caller.scopes.map((s) => `'${s}'`).join(", ") : "no scope"}`);
  }
}

/** The limit names of the API, in its order. */
export const LIMIT_FIELDS: readonly { api: string; key: keyof ProjectLimits; integer: boolean }[] = [
  { api: "submits_per_second", key: "submitsPerSecond", integer: false },
  { api: "burst", key: "burst", integer: true },
  { api: "max_in_flight", key: "maxInFlight", integer: true },
  { api: "max_queued", key: "maxQueued", integer: true },
  { api: "max_watch_streams", key: "maxWatchStreams", integer: true },
];

/** Largest value of any limit: beyond it "unlimited" (0) says it better. */
export const MAX_LIMIT = 1_000_000_000;

/** Checks limits (all or some of them); a 400 naming the first bad field. */
export function checkLimits<T extends Partial<ProjectLimits>>(limits: T): T {
  for (const f of LIMIT_FIELDS) {
    const v = limits[f.key];
    if (v === undefined) continue;
    if (!Number.isFinite(v) || v < 0 || v > MAX_LIMIT || (f.integer && !Number.isInteger(v))) {
      throw new LonghaulError("invalid_argument", `limits.${f.api}: must be ${f.integer ? "an integer" : "a number"} from 0 (unlimited) to ${MAX_LIMIT}`);
    }
  }
  return limits;
}

/** The state of a project's submit bucket. */
export interface BucketState {
  /** Tokens at `at`; null: full. */
  tokens: number | null;
  at: Date | null;
}

/** The outcome of drawing one submit from a bucket. */
export interface BucketDraw {
  ok: boolean;
  /** Tokens left after the draw (unchanged when refused). */
  tokens: number;
  capacity: number;
  /** Seconds until one token is back (0 when one is there). */
  retryAfterSeconds: number;
}

/**
 * A token bucket: `capacity` tokens (the burst, or the rate when no burst is
 * set), refilled continuously at `submitsPerSecond`. The state is a number
 * and a time, so it can live in a database row that every copy draws from.
 */
export function drawToken(state: BucketState, limits: Pick<ProjectLimits, "submitsPerSecond" | "burst">, now: Date): BucketDraw {
  const rate = limits.submitsPerSecond;
  const capacity = Math.max(1, limits.burst || Math.ceil(rate));
  const elapsed = state.at ? Math.max(0, (now.getTime() - state.at.getTime()) / 1000) : 0;
  const tokens = state.tokens === null ? capacity : Math.min(capacity, state.tokens + elapsed * rate);
  if (tokens >= 1) return { ok: true, tokens: tokens - 1, capacity, retryAfterSeconds: 0 };
  return { ok: false, tokens, capacity, retryAfterSeconds: (1 - tokens) / rate };
}

/** Project names: a first path segment of the gateway, so `^[a-z][a-z0-9-]{0,62}$`. */
export const PROJECT_NAME = /^[a-z][a-z0-9-]{0,62}$/;

/**
 * First path segments of the gateway that a project may not take: its own
 * top-level routes, and names kept for later ones.
 */
export const RESERVED_PROJECT_NAMES: ReadonlySet<string> = new Set([
  "v1", "v2", "v3", "v4", "replicate", "docs", "dashboard", "healthz", "metrics", "openapi", "api", "admin", "static", "assets",
  "favicon", "robots", "well-known",
]);

/** Checks a new project's name; a 400 saying why. */
export function checkProjectName(name: string): string {
  if (!PROJECT_NAME.test(name)) {
    throw new LonghaulError("invalid_argument", "name: must match ^[a-z][a-z0-9-]{0,62}$ (a lowercase letter, then up to 62 lowercase letters, digits or '-')");
  }
  if (RESERVED_PROJECT_NAMES.has(name)) {
    throw new LonghaulError("invalid_argument", `name: '${name}' is reserved (a path of the gateway)`);
  }
  return name;
}

/** An admin action to record, in the transaction of the change. */
export interface AuditInput {
  /** `operator:<fingerprint>` or `key:<key id>`. */
  actor: string;
  action: "project.create" | "project.limits" | "project.delete" | "key.create" | "key.revoke" | "run.erase";
  project: string | null;
  target?: string | null;
  detail?: Record<string, unknown>;
}

/** One recorded admin action. */
export interface AuditRecord {
  id: string;
  at: Date;
  actor: string;
  action: string;
  project: string | null;
  target: string | null;
  detail: Record<string, unknown>;
}
