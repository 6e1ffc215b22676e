import { LonghaulError } from "@longhaul/shared/errors";

/**
 * Query parameters a route understands. A filter the API does not know is a
 * 400 naming it, never silently ignored: a typo (`?stauts=failed`) would
 * otherwise return every run and look like an answer. Parameters not in
 * `repeatable` may appear once.
 */
export function checkQueryParams(
  params: URLSearchParams,
  route: string,
  known: readonly string[],
  repeatable: readonly string[] = [],
): void {
  const seen = new Set<string>();
  for (const name of params.keys()) {
    if (!known.includes(name)) {
      throw new LonghaulError("invalid_argument", `${name}: unknown query parameter; ${route} takes ${known.join(", ")}`);
    }
    if (seen.has(name) && !repeatable.includes(name)) {
      throw new LonghaulError("invalid_argument", `${name}: given more than once`);
    }
    seen.add(name);
  }
}

/** An ISO 8601 date-time parameter, undefined when absent or empty; a 400 naming it when malformed. */
export function dateParam(params: URLSearchParams, name: string): Date | undefined {
  const raw = params.get(name);
  if (!raw) return undefined;
  const d = new Date(raw);
  // Date.parse takes more than ISO 8601 ("May 1"): require its shape.
  if (!/^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?)?$/.test(raw) || Number.isNaN(d.getTime())) {
    throw new LonghaulError("invalid_argument", `${name} must be an ISO 8601 date-time, e.g. 2026-05-01T09:00:00Z`);
  }
  return d;
}
