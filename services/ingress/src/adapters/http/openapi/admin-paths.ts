import { errorResponses, jsonResponse, type OpenApiPart } from "./document.js";

/**
 * The operator's API (`/v1/admin/...`, the operator key only) and a project
 * admin's own keys (`/v1/keys`, a key with the `admin` scope), as
 * admin-routes.ts answers them.
 */

type Schema = Record<string, unknown>;
const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const int: Schema = { type: "integer" };
const nullableDateTime: Schema = { type: ["string", "null"], format: "date-time" };

function closed(properties: Record<string, Schema>): Schema {
  return { type: "object", properties, required: Object.keys(properties), additionalProperties: false };
}

const limitFields = {
  submits_per_second: { type: "number", minimum: 0 },
  burst: { ...int, minimum: 0 },
  max_in_flight: { ...int, minimum: 0 },
  max_queued: { ...int, minimum: 0 },
  max_watch_streams: { ...int, minimum: 0 },
};

const key = {
  id: { type: "string" },
  project: { type: "string" },
  name: { type: "string" },
  scopes: { type: "array", items: { type: "string", enum: ["read", "invoke", "admin"] } },
  prefix: { type: "string" },
  created_at: nullableDateTime,
  last_used_at: nullableDateTime,
};

const schemas: Record<string, Schema> = {
  ProjectLimits: { ...closed(limitFields), description: "0 = unlimited." },
  Project: closed({
    name: { type: "string" },
    created_at: nullableDateTime,
    limits: ref("ProjectLimits"),
    usage: closed({ runs_today: int, in_flight: int, queued: int, throttled_today: int }),
  }),
  ProjectList: closed({ projects: { type: "array", items: ref("Project") } }),
  ApiKey: closed(key),
  CreatedApiKey: { ...closed({ ...key, key: { type: "string", description: "The secret: shown in this answer only." } }) },
  ApiKeyList: closed({ keys: { type: "array", items: ref("ApiKey") } }),
  KeyInput: {
    type: "object",
    properties: { name: { type: "string" }, scopes: { type: "array", items: { type: "string", enum: ["read", "invoke", "admin"] } } },
    required: ["name", "scopes"],
    additionalProperties: false,
  },
  WhoAmI: closed({ role: { type: "string" }, key_fingerprint: { type: "string" } }),
  AuditEntry: closed({
    id: { type: "string" },
    at: nullableDateTime,
    actor: { type: "string", description: "operator:<fingerprint> or key:<key id>" },
    action: { type: "string", enum: ["project.create", "project.limits", "project.delete", "key.create", "key.revoke", "run.erase"] },
    project: { type: ["string", "null"] },
    target: { type: ["string", "null"] },
    detail: { type: "object" },
  }),
  AuditPage: closed({ entries: { type: "array", items: ref("AuditEntry") }, next_cursor: { type: ["string", "null"] } }),
};

const name = { name: "name", in: "path", required: true, schema: { type: "string", pattern: "^[a-z][a-z0-9-]{0,62}$" } };
const keyId = { name: "id", in: "path", required: true, schema: { type: "string" } };
const json = (schema: Schema) => ({ required: true, content: { "application/json": { schema } } });
const tags = ["admin"];

const paths = {
  "/v1/admin/whoami": {
    get: { operationId: "adminWhoAmI", tags, summary: "Answers the operator key", responses: { "200": jsonResponse("The operator.", "WhoAmI"), ...errorResponses(401) } },
  },
  "/v1/admin/projects": {
    get: { operationId: "adminListProjects", tags, summary: "Every project", responses: { "200": jsonResponse("The projects.", "ProjectList"), ...errorResponses(401) } },
    post: {
      operationId: "adminCreateProject",
      tags,
      summary: "Create a project",
      requestBody: json({ type: "object", properties: { name: name.schema }, required: ["name"], additionalProperties: false }),
      responses: { "201": jsonResponse("Created.", "Project", { Location: { schema: { type: "string" } } }), ...errorResponses(400, 401, 409) },
    },
  },
  "/v1/admin/projects/{name}": {
    parameters: [name],
    get: { operationId: "adminGetProject", tags, summary: "A project with its limits and usage", responses: { "200": jsonResponse("The project.", "Project"), ...errorResponses(401, 404) } },
    patch: {
      operationId: "adminSetLimits",
      tags,
      summary: "Change a project's limits (a field left out is unchanged; 0 = unlimited)",
      requestBody: json({
        type: "object",
        properties: { limits: { type: "object", properties: limitFields, additionalProperties: false } },
        required: ["limits"],
        additionalProperties: false,
      }),
      responses: { "200": jsonResponse("The project.", "Project"), ...errorResponses(400, 401, 404) },
    },
    delete: {
      operationId: "adminDeleteProject",
      tags,
      summary: "Revoke the project's keys and refuse new runs (runs in flight finish)",
      responses: { "204": { description: "Deleted." }, ...errorResponses(401, 404) },
    },
  },
  "/v1/admin/projects/{name}/keys": {
    parameters: [name],
    get: { operationId: "adminListKeys", tags, summary: "The project's keys (never a secret)", responses: { "200": jsonResponse("The keys.", "ApiKeyList"), ...errorResponses(401, 404) } },
    post: {
      operationId: "adminCreateKey",
      tags,
      summary: "Make a key for the project",
      requestBody: json(ref("KeyInput")),
      responses: { "201": jsonResponse("The key, with its secret.", "CreatedApiKey"), ...errorResponses(400, 401, 404) },
    },
  },
  "/v1/admin/audit": {
    get: {
      operationId: "adminListAudit",
      tags,
      summary: "Admin actions, newest first",
      parameters: [
        { name: "project", in: "query", schema: name.schema },
        { name: "limit", in: "query", schema: { ...int, minimum: 1, maximum: 200, default: 50 } },
        { name: "cursor", in: "query", schema: { type: "string" } },
      ],
      responses: { "200": jsonResponse("A page of entries.", "AuditPage"), ...errorResponses(400, 401) },
    },
  },
  "/v1/admin/keys/{id}": {
    delete: {
      operationId: "adminRevokeKey",
      tags,
      summary: "Revoke a key (refused everywhere within 5 s)",
      parameters: [keyId],
      responses: { "204": { description: "Revoked." }, ...errorResponses(401, 404) },
    },
  },
  "/v1/keys": {
    get: { operationId: "listOwnKeys", tags: ["keys"], summary: "The project's keys (the admin scope)", responses: { "200": jsonResponse("The keys.", "ApiKeyList"), ...errorResponses(403) } },
    post: {
      operationId: "createOwnKey",
      tags: ["keys"],
      summary: "Make a key for the own project, with no more scopes than the caller's",
      requestBody: json(ref("KeyInput")),
      responses: { "201": jsonResponse("The key, with its secret.", "CreatedApiKey"), ...errorResponses(400, 403) },
    },
  },
  "/v1/keys/{id}": {
    delete: {
      operationId: "deleteOwnKey",
      tags: ["keys"],
      summary: "Revoke one of the project's keys",
      parameters: [keyId],
      responses: { "204": { description: "Revoked." }, ...errorResponses(403, 404) },
    },
  },
};

/** The admin API's part of the OpenAPI document. */
export const adminApi: OpenApiPart = {
  paths,
  schemas,
  tags: [
    { name: "admin", description: "The operator's API: projects, limits, keys (the operator key, LONGHAUL_ADMIN_KEY)." },
    { name: "keys", description: "A project's own keys (a key with the admin scope)." },
  ],
};
