import type { IncomingMessage, ServerResponse } from "node:http";
import { LonghaulError } from "@longhaul/shared/errors";
import type { Logger } from "@longhaul/shared/logger";
import type { Caller, Scope } from "../../core/ports.js";

/** What a route handler gets besides the raw request and response. */
export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** Path parameters, percent-decoded. */
  params: Record<string, string>;
  /** For a route ending in `*`: the rest of the raw path (as sent, starting with "/"). */
  rest: string;
  /** The query as sent, without "?". */
  rawQuery: string;
  query: URLSearchParams;
  /** Aborted when the client goes away before the answer is complete. */
  signal: AbortSignal;
  log: Logger;
  /** The authenticated caller; only routes declared with `auth: true` have one. */
  caller: Caller;
}

export type RouteHandler = (ctx: RequestContext) => Promise<void>;

/** One route: method (or "*" for any), pattern like `/v1/runs/:id/result` or `/:project/:app/*`. */
export interface Route {
  method: string;
  pattern: string;
  /** Authenticate the caller before the handler runs (401 otherwise). */
  auth: boolean;
  /**
   * The scope the caller's key needs (403 `permission_denied` naming it
   * otherwise); with `auth: true` only. Undefined: any valid key.
   */
  scope?: Scope;
  handler: RouteHandler;
}

/** A route matched to a request. */
export interface RouteMatch {
  route: Route;
  params: Record<string, string>;
  rest: string;
}

type Compiled = { route: Route; segments: string[]; wildcard: boolean };

/**
 * A small router over raw paths. Literal routes are tried before patterns
 * that start with a parameter, so `/v1/...`, `/healthz` and `/metrics` are
 * never taken for `/{project}/{app}`; a path whose first segment is a
 * reserved literal never falls through to a parameter route either (a
 * project cannot be called `v1`).
 */
export class Router {
  private readonly routes: Compiled[] = [];
  private readonly reserved = new Set<string>();

  add(route: Route): void {
    const segments = route.pattern.split("/").slice(1);
    const wildcard = segments.at(-1) === "*";
    if (wildcard) segments.pop();
    const first = segments[0] ?? "";
    if (!first.startsWith(":")) this.reserved.add(first);
    this.routes.push({ route, segments, wildcard });
    // Literal-first: stable sort keeps registration order within each group.
    this.routes.sort((a, b) => Number(isParam(a.segments[0])) - Number(isParam(b.segments[0])));
  }

  /** The route for a method and raw path, or undefined (a 404). */
  match(method: string, rawPath: string): RouteMatch | undefined {
    const parts = rawPath.split("/").slice(1);
    const reservedFirst = this.reserved.has(parts[0] ?? "");
    for (const c of this.routes) {
      if (c.route.method !== "*" && c.route.method !== method) continue;
      if (reservedFirst && isParam(c.segments[0])) continue;
      const m = matchSegments(c, parts);
      if (m) return { route: c.route, ...m };
    }
    return undefined;
  }
}

function isParam(segment: string | undefined): boolean {
  return segment?.startsWith(":") ?? false;
}

function matchSegments(c: Compiled, parts: string[]): { params: Record<string, string>; rest: string } | undefined {
  if (c.wildcard ? parts.length < c.segments.length : parts.length !== c.segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < c.segments.length; i++) {
    const seg = c.segments[i]!;
    const part = parts[i]!;
    if (seg.startsWith(":")) {
      if (part === "") return undefined;
      params[seg.slice(1)] = decodeSegment(part);
    } else if (seg !== part) {
      return undefined;
    }
  }
  const restParts = parts.slice(c.segments.length);
  return { params, rest: `/${restParts.join("/")}` };
}

function decodeSegment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new LonghaulError("invalid_argument", "malformed percent-encoding in the path");
  }
}
