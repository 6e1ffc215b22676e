import { LonghaulError } from "@longhaul/shared/errors";
import { z } from "@longhaul/shared/config";
import type { adminPb } from "@longhaul/shared/proto";
import { readJson, sendJson } from "./http-io.js";
import { checkQueryParams } from "./query-params.js";
import type { RequestContext, Route } from "./router.js";
import type { RouteDeps } from "./route-deps.js";

/** Largest JSON body of the admin API: its bodies are a name or a few numbers. */
const MAX_ADMIN_JSON_BYTES = 16 * 1024;

const iso = (d: Date | undefined): string | null => (d ? d.toISOString() : null);

/** A project as the admin API shows it. */
export function projectToJson(p: adminPb.Project) {
  const l = p.limits;
  const u = p.usage;
  return {
    name: p.name,
    created_at: iso(p.createdAt),
    limits: {
      submits_per_second: l?.submitsPerSecond ?? 0,
      burst: l?.burst ?? 0,
      max_in_flight: l?.maxInFlight ?? 0,
      max_queued: l?.maxQueued ?? 0,
      max_watch_streams: l?.maxWatchStreams ?? 0,
    },
    usage: {
      runs_today: u?.runsToday ?? 0,
      in_flight: u?.inFlight ?? 0,
      queued: u?.queued ?? 0,
      throttled_today: u?.throttledToday ?? 0,
    },
  };
}

/** A key as listings show it: never its secret. */
export function keyToJson(k: adminPb.ApiKey) {
  return {
    id: k.id,
    project: k.project,
    name: k.name,
    scopes: k.scopes,
    prefix: k.prefix,
    created_at: iso(k.createdAt),
    last_used_at: iso(k.lastUsedAt),
  };
}

/** A key just made, with its secret (`key`), shown in this answer only. */
function createdKeyToJson(res: adminPb.CreateKeyResponse) {
  if (!res.key) throw new LonghaulError("internal", "internal error", { cause: new Error("CreateKey answered no key") });
  return { ...keyToJson(res.key), key: res.secret };
}

const limitValue = z.number().int().min(0);
const projectBody = z.object({ name: z.string() }).strict();
const limitsBody = z
  .object({
    limits: z
      .object({
        submits_per_second: z.number().min(0).optional(),
        burst: limitValue.optional(),
        max_in_flight: limitValue.optional(),
        max_queued: limitValue.optional(),
        max_watch_streams: limitValue.optional(),
      })
      .strict(),
  })
  .strict();
const keyBody = z.object({ name: z.string(), scopes: z.array(z.string()) }).strict();

/** Parses a JSON body against `schema`; a 400 naming the first bad field. */
async function body<T>(ctx: RequestContext, schema: z.ZodType<T>, what: string): Promise<T> {
  const parsed = schema.safeParse(await readJson(ctx.req, MAX_ADMIN_JSON_BYTES));
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const where = first?.path.length ? `${first.path.join(".")}: ` : "";
    throw new LonghaulError("invalid_argument", `invalid ${what}: ${where}${first?.message ?? "bad body"}`);
  }
  return parsed.data;
}

/** The `Authorization` header as sent; the scheduler checks it is the operator key. */
const authOf = (ctx: RequestContext) => ctx.req.headers.authorization ?? "";

/**
 * The operator's API, `/v1/admin/...` (DESIGN.md "Projects, keys and
 * limits"), and a project admin's own keys at `/v1/keys`. Admin routes are
 * not authenticated here: the scheduler's AdminService takes the operator
 * key only, and answers 401 to anything else.
 */
export function adminRoutes(deps: RouteDeps): Route[] {
  const { admin } = deps.ports;
  return [
    {
      method: "GET",
      pattern: "/v1/admin/whoami",
      auth: false,
      handler: async (ctx) => {
        const who = await admin.whoAmI(authOf(ctx), { signal: ctx.signal });
        sendJson(ctx.res, 200, { role: who.role, key_fingerprint: who.keyFingerprint });
      },
    },
    {
      method: "POST",
      pattern: "/v1/admin/projects",
      auth: false,
      handler: async (ctx) => {
        // The key first: a stranger learns nothing from the answer to a bad body.
        await admin.whoAmI(authOf(ctx), { signal: ctx.signal });
        const { name } = await body(ctx, projectBody, "project");
        const p = await admin.createProject(authOf(ctx), name, { signal: ctx.signal });
        sendJson(ctx.res, 201, projectToJson(p), { location: `/v1/admin/projects/${p.name}` });
      },
    },
    {
      method: "GET",
      pattern: "/v1/admin/projects",
      auth: false,
      handler: async (ctx) => {
        const projects = await admin.listProjects(authOf(ctx), { signal: ctx.signal });
        sendJson(ctx.res, 200, { projects: projects.map(projectToJson) });
      },
    },
    {
      method: "GET",
      pattern: "/v1/admin/projects/:name",
      auth: false,
      handler: async (ctx) => {
        sendJson(ctx.res, 200, projectToJson(await admin.getProject(authOf(ctx), ctx.params.name!, { signal: ctx.signal })));
      },
    },
    {
      method: "PATCH",
      pattern: "/v1/admin/projects/:name",
      auth: false,
      handler: async (ctx) => {
        await admin.whoAmI(authOf(ctx), { signal: ctx.signal });
        const { limits: l } = await body(ctx, limitsBody, "limits");
        const p = await admin.updateProjectLimits(
          authOf(ctx),
          ctx.params.name!,
          {
            submitsPerSecond: l.submits_per_second,
            burst: l.burst,
            maxInFlight: l.max_in_flight,
            maxQueued: l.max_queued,
            maxWatchStreams: l.max_watch_streams,
          },
          { signal: ctx.signal },
        );
        sendJson(ctx.res, 200, projectToJson(p));
      },
    },
    {
      method: "DELETE",
      pattern: "/v1/admin/projects/:name",
      auth: false,
      handler: async (ctx) => {
        await admin.deleteProject(authOf(ctx), ctx.params.name!, { signal: ctx.signal });
        ctx.res.writeHead(204).end();
      },
    },
    {
      method: "POST",
      pattern: "/v1/admin/projects/:name/keys",
      auth: false,
      handler: async (ctx) => {
        await admin.whoAmI(authOf(ctx), { signal: ctx.signal });
        const k = await body(ctx, keyBody, "key");
        const res = await admin.createKey(authOf(ctx), ctx.params.name!, k.name, k.scopes, { signal: ctx.signal });
        sendJson(ctx.res, 201, createdKeyToJson(res));
      },
    },
    {
      method: "GET",
      pattern: "/v1/admin/projects/:name/keys",
      auth: false,
      handler: async (ctx) => {
        const keys = await admin.listKeys(authOf(ctx), ctx.params.name!, { signal: ctx.signal });
        sendJson(ctx.res, 200, { keys: keys.map(keyToJson) });
      },
    },
    {
      method: "DELETE",
      pattern: "/v1/admin/keys/:id",
      auth: false,
      handler: async (ctx) => {
        await admin.deleteKey(authOf(ctx), ctx.params.id!, { signal: ctx.signal });
        ctx.res.writeHead(204).end();
      },
    },
    {
      method: "GET",
      pattern: "/v1/admin/audit",
      auth: false,
      handler: async (ctx) => {
        await admin.whoAmI(authOf(ctx), { signal: ctx.signal });
        checkQueryParams(ctx.query, "GET /v1/admin/audit", ["project", "limit", "cursor"]);
        const rawLimit = ctx.query.get("limit") ?? "";
        if (rawLimit !== "" && !/^\d{1,4}$/.test(rawLimit)) throw new LonghaulError("invalid_argument", "limit: from 1 to 200");
        const page = await admin.listAuditEntries(
          authOf(ctx),
          { project: ctx.query.get("project") ?? "", limit: rawLimit === "" ? 0 : Number(rawLimit), cursor: ctx.query.get("cursor") ?? "" },
          { signal: ctx.signal },
        );
        sendJson(ctx.res, 200, {
          entries: page.entries.map((e) => ({
            id: e.id,
            at: iso(e.at),
            actor: e.actor,
            action: e.action,
            project: e.project || null,
            target: e.target || null,
            detail: JSON.parse(e.detailJson || "{}") as unknown,
          })),
          next_cursor: page.nextCursor || null,
        });
      },
    },
    {
      method: "POST",
      pattern: "/v1/keys",
      auth: true,
      scope: "admin",
      handler: async (ctx) => {
        const k = await body(ctx, keyBody, "key");
        sendJson(ctx.res, 201, createdKeyToJson(await admin.createOwnKey(ctx.caller, k.name, k.scopes, { signal: ctx.signal })));
      },
    },
    {
      method: "GET",
      pattern: "/v1/keys",
      auth: true,
      scope: "admin",
      handler: async (ctx) => {
        const keys = await admin.listOwnKeys(ctx.caller, { signal: ctx.signal });
        sendJson(ctx.res, 200, { keys: keys.map(keyToJson) });
      },
    },
    {
      method: "DELETE",
      pattern: "/v1/keys/:id",
      auth: true,
      scope: "admin",
      handler: async (ctx) => {
        await admin.deleteOwnKey(ctx.caller, ctx.params.id!, { signal: ctx.signal });
        ctx.res.writeHead(204).end();
      },
    },
  ];
}
