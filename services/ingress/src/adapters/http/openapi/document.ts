import { schemas } from "./schemas.js";

/**
 * The OpenAPI 3.1 document of the HTTP API, served at `GET /v1/openapi.json`
 * and rendered at `/docs`. It is built once from plain objects (no generator
 * reads the routes): the end-to-end tests keep it honest by checking every
 * answer they receive against the schema of its route and status
 * (tests/helpers/openapi-conformance.ts), and `@longhaul/client` is generated
 * from it (`npm run generate:client`).
 */

type Obj = Record<string, unknown>;

const ref = (name: string): Obj => ({ $ref: `#/components/schemas/${name}` });
const jsonContent = (schema: Obj): Obj => ({ "application/json": { schema } });

/** A JSON answer of one component schema. */
export function jsonResponse(description: string, schema: string | Obj, headers?: Obj): Obj {
  return {
    description,
    content: jsonContent(typeof schema === "string" ? ref(schema) : schema),
    ...(headers ? { headers } : {}),
  };
}

const retryAfter = {
  "Retry-After": { description: "Seconds to wait before trying again.", schema: { type: "integer" } },
  "RateLimit-Policy": {
    description: 'On a 429 over a project limit: the policy, as in draft-ietf-httpapi-ratelimit-headers-10 (`"submits_per_second";q=100;w=2`).',
    schema: { type: "string" },
  },
  RateLimit: {
    description: 'On a 429 over a project limit: what remains and when it resets (`"submits_per_second";r=0;t=2`).',
    schema: { type: "string" },
  },
};

/**
 * Every operation's errors: the statuses it names, and `default` for the
 * rest (a 401, a 429 over a limit, a 503 when a service behind is down).
 */
export function errorResponses(...statuses: number[]): Obj {
  const out: Obj = {};
  for (const s of statuses) out[String(s)] = { $ref: `#/components/responses/E${s}` };
  out.default = { $ref: "#/components/responses/Error" };
  return out;
}

const idParam = { $ref: "#/components/parameters/RunId" };
const appParam = { $ref: "#/components/parameters/App" };
const noStore = { "Cache-Control": { schema: { type: "string" } } };

const location = { Location: { description: "The run: `/v1/runs/{id}`.", schema: { type: "string" } } };

const sse = (description: string): Obj => ({
  description: `${description} \`retry: 3000\`, then \`event: run\` frames whose \`data\` is a Run (JSON), \`: heartbeat\` comments, and on a failure after the 200 a last \`event: error\` frame whose data is an Error.`,
  content: { "text/event-stream": { schema: { type: "string" } } },
});

const asyncHeaders = [
  { name: "Idempotency-Key", in: "header", schema: { type: "string", maxLength: 255 }, description: "A repeated submit with the same key answers the same run." },
  { name: "Prefer", in: "header", schema: { type: "string" }, description: "`respond-async` makes the call async." },
  { name: "X-Longhaul-Timeout", in: "header", schema: { type: "integer", minimum: 1, maximum: 43200 } },
  { name: "X-Longhaul-Priority", in: "header", schema: { type: "integer", minimum: -100, maximum: 100 } },
  { name: "X-Longhaul-Not-Before", in: "header", schema: { type: "string", format: "date-time" } },
  { name: "X-Longhaul-Delay", in: "header", schema: { type: "integer", minimum: 0, maximum: 2592000 } },
  { name: "X-Longhaul-Queue-Ttl", in: "header", schema: { type: "integer", minimum: 1, maximum: 2592000 }, description: "Seconds from submit within which the run must start; not started by then (the app busy), it ends `expired` (`queue_ttl_exceeded`) and never reaches the app. The app's `queue_ttl_seconds` still applies: the earlier wins. Async only." },
  { name: "queueTtl", in: "query", schema: { type: "integer", minimum: 1, maximum: 2592000 }, description: "`X-Longhaul-Queue-Ttl` as a query parameter (read only without the header; passed to the app like any other)." },
  { name: "X-Longhaul-Labels", in: "header", schema: { type: "string" }, description: "`key=value,key=value`, up to 10." },
  { name: "async", in: "query", schema: { type: "string", enum: ["true", "1", "false", "0", ""] }, description: "`true`, `1` or a bare `async`: answer 202 at once and run in the background." },
  { name: "webhookEndpoint", in: "query", schema: { type: "string", format: "uri" }, description: "POST the app's answer here when the run finishes (async only)." },
];

/** `ANY /{project}/{app}/{path}`: the same operation under every method. */
export function gatewayOperations(prefix: string, summary: string): Obj {
  const op = (method: string): Obj => ({
    operationId: `${prefix}${method[0]!.toUpperCase()}${method.slice(1)}`,
    tags: ["gateway"],
    summary: `${summary} (${method.toUpperCase()})`,
    description:
      "Everything below `/{project}/{app}` is the app's (`{path}` may hold slashes). Async (`?async=true` or `Prefer: respond-async`): `202` with `{\"run_id\"}`. Sync: the app's own answer streams back unchanged, whatever its status and content type.",
    parameters: [
      { name: "project", in: "path", required: true, schema: { type: "string" } },
      { name: "app", in: "path", required: true, schema: { type: "string" } },
      { name: "path", in: "path", required: true, schema: { type: "string" }, description: "The rest of the path, slashes included." },
      ...asyncHeaders,
    ],
    ...(["post", "put", "patch"].includes(method)
      ? { requestBody: { required: false, content: { "*/*": { schema: {} } } } }
      : {}),
    responses: {
      "202": jsonResponse("Accepted: the run is committed.", "RunAccepted", {
        ...location,
        "Preference-Applied": { schema: { type: "string" } },
      }),
      default: { description: "A sync call: the app's answer as it sent it; or a Longhaul error (JSON).", content: { "*/*": { schema: {} } } },
    },
  });
  return Object.fromEntries(["get", "post", "put", "patch", "delete"].map((m) => [m, op(m)]));
}

const paths: Obj = {
  "/{project}/{app}/{path}": gatewayOperations("callApp", "Call an app"),
  "/v1/runs": {
    get: {
      operationId: "listRuns",
      tags: ["runs"],
      summary: "List runs, newest first",
      parameters: [
        { name: "app", in: "query", schema: { type: "string" } },
        { name: "status", in: "query", schema: ref("RunStatus") },
        { name: "created_after", in: "query", schema: { type: "string", format: "date-time" } },
        { name: "created_before", in: "query", schema: { type: "string", format: "date-time" } },
        { name: "status_code", in: "query", schema: { type: "string", pattern: "^([1-5][0-9][0-9]|[1-5]xx)$" } },
        { name: "id_prefix", in: "query", schema: { type: "string", minLength: 8 } },
        { name: "label", in: "query", schema: { type: "array", items: { type: "string" } }, style: "form", explode: true },
        { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 500, default: 50 } },
        { name: "cursor", in: "query", schema: { type: "string" } },
      ],
      responses: { "200": jsonResponse("A page of runs.", "RunList"), ...errorResponses(400) },
    },
  },
  "/v1/runs/retry": {
    post: {
      operationId: "retryRuns",
      tags: ["runs"],
      summary: "Bulk recovery: retry every finished run a filter matches, once",
      requestBody: { required: true, content: jsonContent(ref("RetryRunsFilter")) },
      responses: { "200": jsonResponse("How many were retried, with the new runs' ids.", "RetriedRuns"), ...errorResponses(400) },
    },
  },
  "/v1/runs/{id}": {
    get: {
      operationId: "getRun",
      tags: ["runs"],
      summary: "A run, optionally long-polled until it is finished",
      parameters: [idParam, { name: "wait", in: "query", schema: { type: "integer", minimum: 0, maximum: 60 } }],
      responses: { "200": jsonResponse("The run.", "Run"), ...errorResponses(400, 404) },
    },
    delete: {
      operationId: "eraseRun",
      tags: ["runs"],
      summary: "Erase a finished run's bodies and headers (personal data)",
      description:
        "Needs the `admin` scope. The stored request and response bodies and headers go at once; the run, its times, status and attempts stay. `409` while the run has not finished. Recorded in the audit log (`run.erase`).",
      parameters: [idParam],
      responses: { "204": { description: "Erased." }, ...errorResponses(403, 404, 409) },
    },
  },
  "/v1/runs/{id}/result": {
    get: {
      operationId: "getRunResult",
      tags: ["runs"],
      summary: "What the app answered",
      description:
        "Raw (default): the stored body under the app's content type; the app's status in `X-Longhaul-Status-Code`. `format=json`: an envelope with the body in base64. `format=preview`: headers masked, body capped. A signed link (`expires`, `signature`) needs no key. Once the body is gone (dropped after the retention period, or erased), the raw form is a `410` `result_gone` and the envelopes say `body_gone: true`.",
      security: [{ bearer: [] }, {}],
      parameters: [
        idParam,
        { name: "format", in: "query", schema: { type: "string", enum: ["raw", "json", "preview"] } },
        { name: "preview_bytes", in: "query", schema: { type: "integer", minimum: 0, maximum: 1048576 } },
        { name: "expires", in: "query", schema: { type: "integer" } },
        { name: "signature", in: "query", schema: { type: "string" } },
      ],
      responses: {
        "200": {
          description: "The stored answer.",
          headers: {
            "X-Longhaul-Status-Code": { schema: { type: "integer" } },
            "X-Longhaul-Run-Status": { schema: ref("RunStatus") },
            "X-Longhaul-Body-Truncated": { schema: { type: "boolean" } },
          },
          content: {
            "application/json": { schema: { anyOf: [ref("RunResult"), ref("RunResultPreview"), { description: "raw: the app's own JSON" }] } },
            "*/*": { schema: {} },
          },
        },
        ...errorResponses(400, 401, 404, 409, 410),
      },
    },
  },
  "/v1/runs/{id}/request": {
    get: {
      operationId: "getRunRequest",
      tags: ["runs"],
      summary: "What was sent to the app (secrets masked)",
      parameters: [idParam, { name: "preview_bytes", in: "query", schema: { type: "integer", minimum: 0, maximum: 1048576 } }],
      responses: { "200": jsonResponse("The stored request.", "RunRequest"), ...errorResponses(404) },
    },
  },
  "/v1/runs/{id}/cancel": {
    post: {
      operationId: "cancelRun",
      tags: ["runs"],
      summary: "Cancel a queued or running run",
      parameters: [idParam],
      responses: { "200": jsonResponse("The cancelled run.", "Run"), ...errorResponses(404, 409) },
    },
  },
  "/v1/runs/{id}/retry": {
    post: {
      operationId: "retryRun",
      tags: ["runs"],
      summary: "Submit a new run with the stored request of this one",
      parameters: [idParam],
      responses: { "202": jsonResponse("The new run.", "RunAccepted", location), ...errorResponses(404, 409) },
    },
  },
  "/v1/runs/{id}/events": {
    get: {
      operationId: "watchRun",
      tags: ["runs"],
      summary: "Server-sent events of a run's state changes",
      parameters: [idParam],
      responses: { "200": sse("The run now, then each change; ends once the run is finished."), ...errorResponses(404) },
    },
  },
  "/v1/runs/{id}/deliveries": {
    get: {
      operationId: "getDeliveries",
      tags: ["webhooks"],
      summary: "The run's webhook delivery and its attempts",
      parameters: [idParam],
      responses: { "200": jsonResponse("The delivery.", "Delivery"), ...errorResponses(404) },
    },
  },
  "/v1/runs/{id}/webhook/redeliver": {
    post: {
      operationId: "redeliverWebhook",
      tags: ["webhooks"],
      summary: "Deliver a finished run's webhook again",
      parameters: [idParam],
      responses: { "202": jsonResponse("The delivery, started again.", "Delivery"), ...errorResponses(404, 409) },
    },
  },
  "/v1/events": {
    get: {
      operationId: "watchProject",
      tags: ["runs"],
      summary: "Server-sent events of the project's runs",
      parameters: [
        { name: "app", in: "query", schema: { type: "string" } },
        { name: "run", in: "query", schema: { type: "array", items: { type: "string", format: "uuid" } }, style: "form", explode: true },
        { name: "since", in: "query", schema: { type: "string", format: "date-time" } },
      ],
      responses: { "200": sse("One frame per new or changed run."), ...errorResponses(400) },
    },
  },
  "/v1/stats": {
    get: {
      operationId: "getStats",
      tags: ["runs"],
      summary: "Figures over a window (the dashboard's overview)",
      parameters: [
        { name: "window", in: "query", schema: { type: "string", enum: ["1h", "24h", "7d"], default: "1h" } },
        { name: "app", in: "query", schema: { type: "string" } },
        { name: "mode", in: "query", schema: { type: "string", enum: ["async", "sync"] } },
      ],
      responses: { "200": jsonResponse("The figures.", "Stats"), ...errorResponses(400, 404) },
    },
  },
  "/v1/project": {
    get: {
      operationId: "getProject",
      tags: ["project"],
      summary: "The project of the key",
      responses: { "200": jsonResponse("The project.", "KeyProject"), ...errorResponses() },
    },
  },
  "/v1/apps": {
    get: {
      operationId: "listApps",
      tags: ["apps"],
      summary: "The project's apps",
      responses: { "200": jsonResponse("The apps.", "AppList"), ...errorResponses() },
    },
  },
  "/v1/apps/{app}": {
    parameters: [appParam],
    get: {
      operationId: "getApp",
      tags: ["apps"],
      summary: "An app",
      responses: { "200": jsonResponse("The app.", "App"), ...errorResponses(404) },
    },
    put: {
      operationId: "putApp",
      tags: ["apps"],
      summary: "Create or replace an app",
      requestBody: { required: true, content: jsonContent(ref("AppInput")) },
      responses: {
        "200": jsonResponse("Replaced.", "App"),
        "201": jsonResponse("Created.", "App", { Location: { schema: { type: "string" } } }),
        ...errorResponses(400),
      },
    },
    delete: {
      operationId: "deleteApp",
      tags: ["apps"],
      summary: "Delete an app",
      responses: { "204": { description: "Deleted." }, ...errorResponses(404) },
    },
  },
  "/v1/apps/{app}/pause": {
    post: {
      operationId: "pauseApp",
      tags: ["apps"],
      summary: "Hold the app's queue: queued runs wait, running ones finish",
      parameters: [appParam],
      responses: { "200": jsonResponse("The app.", "App"), ...errorResponses(404) },
    },
  },
  "/v1/apps/{app}/resume": {
    post: {
      operationId: "resumeApp",
      tags: ["apps"],
      summary: "Start the app's queue again",
      parameters: [appParam],
      responses: { "200": jsonResponse("The app.", "App"), ...errorResponses(404) },
    },
  },
  "/v1/apps/{app}/outcomes": {
    get: {
      operationId: "getAppOutcomes",
      tags: ["apps"],
      summary: "The app's recent runs counted by status",
      parameters: [appParam, { name: "window_seconds", in: "query", schema: { type: "integer", minimum: 1, maximum: 86400 } }],
      responses: { "200": jsonResponse("The counts.", "AppOutcomes"), ...errorResponses(400, 404) },
    },
  },
  "/v1/webhooks/secret": {
    get: {
      operationId: "getWebhookSecret",
      tags: ["webhooks"],
      summary: "The project's webhook signing secret",
      responses: { "200": jsonResponse("The secret(s).", "WebhookSecret"), ...errorResponses() },
    },
  },
  "/v1/webhooks/secret/rotate": {
    post: {
      operationId: "rotateWebhookSecret",
      tags: ["webhooks"],
      summary: "Rotate the secret (the previous one keeps signing for a while)",
      responses: { "200": jsonResponse("The secret(s).", "WebhookSecret"), ...errorResponses() },
    },
  },
  "/v1/openapi.json": {
    get: {
      operationId: "getOpenApi",
      tags: ["meta"],
      summary: "This document",
      security: [],
      responses: {
        "200": { description: "The OpenAPI document.", content: { "application/json": { schema: { type: "object" } } } },
        "304": { description: "Not modified (ETag)." },
      },
    },
  },
  "/docs": {
    get: {
      operationId: "getDocs",
      tags: ["meta"],
      summary: "The API reference page (this document, rendered)",
      security: [],
      responses: {
        "200": { description: "HTML.", content: { "text/html": { schema: { type: "string" } } } },
        "304": { description: "Not modified (ETag)." },
      },
    },
  },
  "/docs/assets/{version}/{file}": {
    get: {
      operationId: "getDocsAsset",
      tags: ["meta"],
      summary: "A file of the reference page (cached for a year)",
      security: [],
      parameters: [
        { name: "version", in: "path", required: true, schema: { type: "string" } },
        { name: "file", in: "path", required: true, schema: { type: "string" } },
      ],
      responses: {
        "200": { description: "The file.", content: { "text/javascript": { schema: { type: "string" } }, "text/css": { schema: { type: "string" } } } },
        "304": { description: "Not modified (ETag)." },
        ...errorResponses(404),
      },
    },
  },
  "/dashboard/{path}": {
    get: {
      operationId: "getDashboard",
      tags: ["meta"],
      summary: "The dashboard (its page, and its files under /dashboard/assets/)",
      security: [],
      parameters: [{ name: "path", in: "path", required: true, schema: { type: "string" }, description: "Any path below /dashboard, slashes included." }],
      responses: {
        "200": {
          description: "The page or one of its files.",
          content: { "text/html": { schema: { type: "string" } }, "text/javascript": { schema: { type: "string" } }, "text/css": { schema: { type: "string" } } },
        },
        "304": { description: "Not modified (ETag)." },
        ...errorResponses(404),
      },
    },
  },
  "/healthz": {
    get: {
      operationId: "getHealth",
      tags: ["meta"],
      summary: "200 while the scheduler answers its health check",
      security: [],
      responses: { "200": jsonResponse("Serving.", "Health"), "503": jsonResponse("Not serving.", "Health") },
    },
  },
};

const errorResponse = (description: string, extraHeaders: Obj = {}): Obj => ({
  description,
  headers: extraHeaders,
  content: jsonContent(ref("Error")),
});

/** More paths, schemas and tags, added by other route groups (the admin and compatibility APIs). */
export interface OpenApiPart {
  paths?: Obj;
  schemas?: Obj;
  tags?: { name: string; description: string }[];
}

/** Merges named maps; a name given twice is a bug in the document, not something to overwrite. */
function merge(what: string, ...maps: Obj[]): Obj {
  const out: Obj = {};
  for (const m of maps) {
    for (const [k, v] of Object.entries(m)) {
      if (Object.hasOwn(out, k)) throw new Error(`OpenAPI document: ${what} ${k} is defined twice`);
      out[k] = v;
    }
  }
  return out;
}

/** Builds the document; `parts` add the paths of further route groups. */
export function openApiDocument(version: string, parts: OpenApiPart[] = []): Obj {
  return {
    openapi: "3.1.1",
    info: {
      title: "Longhaul HTTP API",
      version,
      summary: "Async requests for any HTTP app.",
      description:
        "The gateway (`/{project}/{app}/...`) and the control API (`/v1/...`) of Longhaul. Errors are `{\"error\":{\"code\",\"message\"}}` with the status of their code. Prose and examples: docs/HTTP-API.md.",
      license: { name: "MIT", identifier: "MIT" },
    },
    // Relative: the servers are wherever this document was fetched from.
    servers: [{ url: "/" }],
    security: [{ bearer: [] }],
    tags: [
      { name: "gateway", description: "Calling apps, async or sync." },
      { name: "runs", description: "Runs: state, results, events, cancel, retry." },
      { name: "apps", description: "Apps and their settings." },
      { name: "webhooks", description: "Webhook secrets and deliveries." },
      { name: "project", description: "The key's project." },
      { name: "meta", description: "This document, health, metrics." },
      ...parts.flatMap((p) => p.tags ?? []),
    ],
    paths: merge("path", paths, ...parts.map((p) => p.paths ?? {})),
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: "A project's API key (or the operator key for /v1/admin)." },
      },
      parameters: {
        RunId: { name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } },
        App: { name: "app", in: "path", required: true, schema: { type: "string" } },
      },
      responses: {
        E400: errorResponse("Bad input."),
        E401: errorResponse("No key, an unknown key, a bad or expired signed link.", {
          "WWW-Authenticate": { schema: { type: "string" } },
        }),
        E403: errorResponse("The key lacks the scope this needs (`permission_denied`, naming the scope)."),
        E404: errorResponse("Unknown, or another project's."),
        E409: errorResponse("The run is in the wrong state for this."),
        E410: errorResponse("`result_gone`: the app's stored body is no longer stored (dropped after the retention period, or erased)."),
        Error: errorResponse("An error; see the code.", retryAfter),
      },
      schemas: merge("schema", schemas, ...parts.map((p) => p.schemas ?? {})),
    },
  };
}
