import type { Logger } from "@longhaul/shared/logger";
import { unary, type CallContext } from "@longhaul/shared/grpc";
import { adminPb } from "@longhaul/shared/proto";
import type { ProjectView, Tenancy } from "../../core/tenancy.js";
import type { KeyRecord, ProjectLimits } from "../../core/tenancy-model.js";
import { bearerOf, callerOf } from "./caller.js";

function projectToProto(p: ProjectView): adminPb.Project {
  return {
    name: p.name,
    createdAt: p.createdAt,
    limits: {
      submitsPerSecond: p.limits.submitsPerSecond,
      burst: p.limits.burst,
      maxInFlight: p.limits.maxInFlight,
      maxQueued: p.limits.maxQueued,
      maxWatchStreams: p.limits.maxWatchStreams,
    },
    usage: {
      runsToday: p.usage.runsToday,
      inFlight: p.usage.inFlight,
      queued: p.usage.queued,
      throttledToday: p.usage.throttledToday,
    },
  };
}

function keyToProto(k: KeyRecord): adminPb.ApiKey {
  return {
    id: k.id,
    project: k.project,
    name: k.name,
    scopes: [...k.scopes],
    prefix: k.prefix,
    createdAt: k.createdAt,
    lastUsedAt: k.lastUsedAt ?? undefined,
  };
}

function limitsUpdate(u: adminPb.ProjectLimitsUpdate | undefined): Partial<ProjectLimits> {
  if (!u) return {};
  return {
    ...(u.submitsPerSecond !== undefined ? { submitsPerSecond: u.submitsPerSecond } : {}),
    ...(u.burst !== undefined ? { burst: u.burst } : {}),
    ...(u.maxInFlight !== undefined ? { maxInFlight: u.maxInFlight } : {}),
    ...(u.maxQueued !== undefined ? { maxQueued: u.maxQueued } : {}),
    ...(u.maxWatchStreams !== undefined ? { maxWatchStreams: u.maxWatchStreams } : {}),
  };
}

/** `longhaul.v1.AdminService`: the operator's, on the operator key only. */
export function createAdminService(tenancy: Tenancy, log: Logger): adminPb.AdminServiceServer {
  const operator = (ctx: CallContext) => {
    const { fingerprint } = tenancy.checkAdmin(bearerOf(ctx));
    return { fingerprint, actor: `operator:${fingerprint}` };
  };
  return {
    whoAmI: unary(log, "WhoAmI", async (_req: adminPb.WhoAmIRequest, ctx) => {
      const { fingerprint } = operator(ctx);
      return { role: "operator", keyFingerprint: fingerprint };
    }),
    createProject: unary(log, "CreateProject", async (req: adminPb.CreateProjectRequest, ctx) => {
      return { project: projectToProto(await tenancy.createProject(req.name, operator(ctx).actor)) };
    }),
    getProject: unary(log, "GetProject", async (req: adminPb.GetProjectRequest, ctx) => {
      operator(ctx);
      return { project: projectToProto(await tenancy.getProject(req.name)) };
    }),
    listProjects: unary(log, "ListProjects", async (_req: adminPb.ListProjectsRequest, ctx) => {
      operator(ctx);
      return { projects: (await tenancy.listProjects()).map(projectToProto) };
    }),
    updateProjectLimits: unary(log, "UpdateProjectLimits", async (req: adminPb.UpdateProjectLimitsRequest, ctx) => {
      return { project: projectToProto(await tenancy.updateLimits(req.name, limitsUpdate(req.limits), operator(ctx).actor)) };
    }),
    deleteProject: unary(log, "DeleteProject", async (req: adminPb.DeleteProjectRequest, ctx) => {
      await tenancy.deleteProject(req.name, operator(ctx).actor);
      return {};
    }),
    createKey: unary(log, "CreateKey", async (req: adminPb.CreateKeyRequest, ctx) => {
      const k = await tenancy.createKey(req.project, { name: req.name, scopes: req.scopes }, operator(ctx).actor);
      return { key: keyToProto(k), secret: k.secret };
    }),
    listKeys: unary(log, "ListKeys", async (req: adminPb.ListKeysRequest, ctx) => {
      operator(ctx);
      return { keys: (await tenancy.listKeys(req.project)).map(keyToProto) };
    }),
    deleteKey: unary(log, "DeleteKey", async (req: adminPb.DeleteKeyRequest, ctx) => {
      await tenancy.revokeKey(req.id, { actor: operator(ctx).actor });
      return {};
    }),
    listAuditEntries: unary(log, "ListAuditEntries", async (req: adminPb.ListAuditEntriesRequest, ctx) => {
      operator(ctx);
      const page = await tenancy.listAudit({ project: req.project, limit: req.limit, cursor: req.cursor });
      return {
        entries: page.entries.map((e) => ({
          id: e.id,
          at: e.at,
          actor: e.actor,
          action: e.action,
          project: e.project ?? "",
          target: e.target ?? "",
          detailJson: JSON.stringify(e.detail),
        })),
        nextCursor: page.nextCursor,
      };
    }),
  };
}

/** `longhaul.v1.KeyService`: a project's own keys, for its keys with the `admin` scope. */
export function createKeyService(tenancy: Tenancy, log: Logger): adminPb.KeyServiceServer {
  return {
    createKey: unary(log, "CreateKey", async (req: adminPb.CreateKeyRequest, ctx) => {
      const caller = await callerOf(tenancy, ctx, "admin", "managing keys");
      const k = await tenancy.createOwnKey(caller, { name: req.name, scopes: req.scopes });
      return { key: keyToProto(k), secret: k.secret };
    }),
    listKeys: unary(log, "ListKeys", async (_req: adminPb.ListKeysRequest, ctx) => {
      const caller = await callerOf(tenancy, ctx, "admin", "managing keys");
      return { keys: (await tenancy.listOwnKeys(caller)).map(keyToProto) };
    }),
    deleteKey: unary(log, "DeleteKey", async (req: adminPb.DeleteKeyRequest, ctx) => {
      const caller = await callerOf(tenancy, ctx, "admin", "managing keys");
      await tenancy.revokeKey(req.id, caller);
      return {};
    }),
  };
}
