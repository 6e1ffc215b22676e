import { Metadata } from "@grpc/grpc-js";
import { LonghaulError } from "@longhaul/shared/errors";
import { callUnary, createClient, type GrpcTls } from "@longhaul/shared/grpc";
import { adminPb } from "@longhaul/shared/proto";
import type { AdminPort, Caller } from "../../core/ports.js";

/** Deadline of admin calls: each is a statement or two. */
const CALL_TIMEOUT_MS = 10_000;

function authMetadata(authorization: string): Metadata {
  const md = new Metadata();
  // The scheduler answers a missing key with unauthenticated; an empty value is not sent.
  if (authorization) md.set("authorization", authorization);
  return md;
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new LonghaulError("internal", "internal error", { cause: new Error(`the scheduler's answer has no ${what}`) });
  return value;
}

/** AdminService and KeyService of the scheduler at `address`, on the caller's own key; over TLS when `tls` is given. */
export function createAdminClient(address: string, tls?: GrpcTls): AdminPort & { close(): void } {
  const admin = createClient(adminPb.AdminServiceClient, address, { tls });
  const keys = createClient(adminPb.KeyServiceClient, address, { tls });
  return {
    whoAmI: (auth, opts) => callUnary(admin.whoAmI.bind(admin), {}, authMetadata(auth), CALL_TIMEOUT_MS, opts?.signal),
    async createProject(auth, name, opts) {
      const res = await callUnary(admin.createProject.bind(admin), { name }, authMetadata(auth), CALL_TIMEOUT_MS, opts?.signal);
      return required(res.project, "project");
    },
    async getProject(auth, name, opts) {
      const res = await callUnary(admin.getProject.bind(admin), { name }, authMetadata(auth), CALL_TIMEOUT_MS, opts?.signal);
      return required(res.project, "project");
    },
    async listProjects(auth, opts) {
      return (await callUnary(admin.listProjects.bind(admin), {}, authMetadata(auth), CALL_TIMEOUT_MS, opts?.signal)).projects;
    },
    async updateProjectLimits(auth, name, limits, opts) {
      const res = await callUnary(admin.updateProjectLimits.bind(admin), { name, limits }, authMetadata(auth), CALL_TIMEOUT_MS, opts?.signal);
      return required(res.project, "project");
    },
    async deleteProject(auth, name, opts) {
      await callUnary(admin.deleteProject.bind(admin), { name }, authMetadata(auth), CALL_TIMEOUT_MS, opts?.signal);
    },
    createKey: (auth, project, name, scopes, opts) =>
      callUnary(admin.createKey.bind(admin), { project, name, scopes }, authMetadata(auth), CALL_TIMEOUT_MS, opts?.signal),
    async listKeys(auth, project, opts) {
      return (await callUnary(admin.listKeys.bind(admin), { project }, authMetadata(auth), CALL_TIMEOUT_MS, opts?.signal)).keys;
    },
    async deleteKey(auth, id, opts) {
      await callUnary(admin.deleteKey.bind(admin), { id }, authMetadata(auth), CALL_TIMEOUT_MS, opts?.signal);
    },
    listAuditEntries: (auth, req, opts) =>
      callUnary(admin.listAuditEntries.bind(admin), req, authMetadata(auth), CALL_TIMEOUT_MS, opts?.signal),
    createOwnKey: (caller: Caller, name, scopes, opts) =>
      callUnary(keys.createKey.bind(keys), { project: "", name, scopes }, authMetadata(caller.authorization), CALL_TIMEOUT_MS, opts?.signal),
    async listOwnKeys(caller, opts) {
      return (await callUnary(keys.listKeys.bind(keys), { project: "" }, authMetadata(caller.authorization), CALL_TIMEOUT_MS, opts?.signal)).keys;
    },
    async deleteOwnKey(caller, id, opts) {
      await callUnary(keys.deleteKey.bind(keys), { id }, authMetadata(caller.authorization), CALL_TIMEOUT_MS, opts?.signal);
    },
    close() {
      admin.close();
      keys.close();
    },
  };
}
