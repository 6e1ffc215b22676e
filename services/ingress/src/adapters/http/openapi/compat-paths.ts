import { gatewayOperations, jsonResponse, type OpenApiPart } from "./document.js";

/**
 * The compatibility APIs' part of the OpenAPI document: RunPod's `/v2`,
 * Replicate's `/replicate/v1` and Cerebrium's `/v4` URL shape, as
 * runpod-routes.ts, replicate-routes.ts and gateway-routes.ts answer them.
 */

type Schema = Record<string, unknown>;
const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const int: Schema = { type: "integer" };
const nullableDateTime: Schema = { type: ["string", "null"], format: "date-time" };

const runpodError = { description: "RunPod's error shape.", content: { "application/json": { schema: ref("RunpodError") } } };
const replicateError = { description: "Replicate's error shape (RFC 9457 problem details).", content: { "application/problem+json": { schema: ref("ReplicateProblem") } } };

const app = { name: "app", in: "path", required: true, schema: { type: "string" }, description: "The app (RunPod's endpoint id)." };
const job = { name: "job", in: "path", required: true, schema: { type: "string", format: "uuid" } };
const wait = { name: "wait", in: "query", schema: { type: "integer", minimum: 1000, maximum: 300000 }, description: "How long to wait, in ms (default 90000)." };

const runpod = (operationId: string, summary: string, ok: Schema, extra: Schema = {}): Schema => ({
  operationId,
  tags: ["runpod"],
  summary,
  ...extra,
  responses: { "200": jsonResponse("OK (RunPod's SDK expects 200 on every success).", ok), default: runpodError },
});

const runBody = { required: true, content: { "application/json": { schema: ref("RunpodRequest") } } };

const jobPaths = (kind: "status" | "status-sync" | "stream", summary: string, ok: string, params: Schema[]) => {
  const op = (m: string) => runpod(`runpod${kind.replace(/(^|-)(\w)/g, (_: string, _d: string, c: string) => c.toUpperCase())}${m}`, summary, ref(ok), { parameters: [app, job, ...params] });
  return { get: op("Get"), post: op("Post") };
};

const paths: Schema = {
  "/v2/{app}/run": { post: runpod("runpodRun", "Queue a job; the app receives {\"id\",\"input\"} as a POST to its URL", ref("RunpodJob"), { parameters: [app], requestBody: runBody }) },
  "/v2/{app}/runsync": {
    post: runpod("runpodRunSync", "Queue a job and wait for it (up to `wait` ms)", ref("RunpodJob"), { parameters: [app, wait], requestBody: runBody }),
  },
  "/v2/{app}/status/{job}": jobPaths("status", "A job", "RunpodJob", []),
  "/v2/{app}/status-sync/{job}": jobPaths("status-sync", "A job, once finished or after `wait` ms", "RunpodJob", [wait]),
  "/v2/{app}/stream/{job}": jobPaths("stream", "A job's output so far (the whole output once it is finished); waits up to 10 s", "RunpodStream", []),
  "/v2/{app}/cancel/{job}": { post: runpod("runpodCancel", "Cancel a job (a finished one is answered as it is)", ref("RunpodJob"), { parameters: [app, job] }) },
  "/v2/{app}/retry/{job}": { post: runpod("runpodRetry", "Retry a FAILED or TIMED_OUT job under the same id", ref("RunpodJob"), { parameters: [app, job] }) },
  "/v2/{app}/purge-queue": { post: runpod("runpodPurgeQueue", "Cancel the app's queued jobs", ref("RunpodPurge"), { parameters: [app] }) },
  "/v2/{app}/health": { get: runpod("runpodHealth", "Jobs of the last hour and calls in flight", ref("RunpodHealth"), { parameters: [app] }) },
  "/replicate/v1/predictions": {
    post: {
      operationId: "replicateCreatePrediction",
      tags: ["replicate"],
      summary: "Create a prediction: `version` names the app",
      parameters: [{ name: "Prefer", in: "header", schema: { type: "string" }, description: "`wait` (60 s) or `wait=N` (1..60): answer once finished" }],
      requestBody: { required: true, content: { "application/json": { schema: ref("ReplicateCreate") } } },
      responses: { "201": jsonResponse("The prediction.", "ReplicatePrediction"), default: replicateError },
    },
    get: {
      operationId: "replicateListPredictions",
      tags: ["replicate"],
      summary: "Predictions made through this API, newest first",
      parameters: [{ name: "cursor", in: "query", schema: { type: "string" } }],
      responses: { "200": jsonResponse("A page.", "ReplicatePredictionList"), default: replicateError },
    },
  },
  "/replicate/v1/models/{owner}/{name}/predictions": {
    post: {
      operationId: "replicateCreateModelPrediction",
      tags: ["replicate"],
      summary: "Create a prediction: `name` names the app (`owner` is not used)",
      parameters: [
        { name: "owner", in: "path", required: true, schema: { type: "string" } },
        { name: "name", in: "path", required: true, schema: { type: "string" } },
        { name: "Prefer", in: "header", schema: { type: "string" } },
      ],
      requestBody: { required: true, content: { "application/json": { schema: ref("ReplicateCreate") } } },
      responses: { "201": jsonResponse("The prediction.", "ReplicatePrediction"), default: replicateError },
    },
  },
  "/replicate/v1/predictions/{id}": {
    get: {
      operationId: "replicateGetPrediction",
      tags: ["replicate"],
      summary: "A prediction",
      parameters: [{ name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } }],
      responses: { "200": jsonResponse("The prediction.", "ReplicatePrediction"), default: replicateError },
    },
  },
  "/replicate/v1/predictions/{id}/cancel": {
    post: {
      operationId: "replicateCancelPrediction",
      tags: ["replicate"],
      summary: "Cancel a prediction (a finished one is answered as it is)",
      parameters: [{ name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } }],
      responses: { "200": jsonResponse("The prediction.", "ReplicatePrediction"), default: replicateError },
    },
  },
  "/v2/{path}": Object.fromEntries(
    ["get", "post", "put", "patch", "delete"].map((m) => [
      m,
      { operationId: `runpodUnknown${m}`, tags: ["runpod"], summary: "Any other path under /v2: RunPod's 404", parameters: [{ name: "path", in: "path", required: true, schema: { type: "string" } }], responses: { "404": runpodError, default: runpodError } },
    ]),
  ),
  "/replicate/{path}": Object.fromEntries(
    ["get", "post", "put", "patch", "delete"].map((m) => [
      m,
      { operationId: `replicateUnknown${m}`, tags: ["replicate"], summary: "Any other path under /replicate: Replicate's 404", parameters: [{ name: "path", in: "path", required: true, schema: { type: "string" } }], responses: { "404": replicateError, default: replicateError } },
    ]),
  ),
  "/v4/{project}/{app}/{path}": gatewayOperations("cerebriumCall", "Call an app by Cerebrium's URL shape (the same as /{project}/{app}/{path})"),
};

const schemas: Record<string, Schema> = {
  RunpodStatus: { type: "string", enum: ["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"] },
  RunpodRequest: {
    type: "object",
    properties: {
      input: { description: "Sent to the app as {\"id\",\"input\"}." },
      webhook: { type: "string", format: "uri" },
      webhookV2: { type: "string", format: "uri" },
      policy: {
        type: "object",
        properties: {
          executionTimeout: { ...int, minimum: 1000, maximum: 43200000, description: "ms; the run's timeout" },
          ttl: { ...int, minimum: 1000, maximum: 604800000, description: "ms: the job's whole lifetime from submit; it bounds the run's timeout, a job not started within it (whole seconds, rounded down) never starts and ends TIMED_OUT, and past it the job is cancelled if not ended and answers 404 when asked about" },
          lowPriority: { type: "boolean" },
        },
      },
      s3Config: { type: "object" },
    },
    required: ["input"],
  },
  RunpodJob: {
    type: "object",
    properties: {
      id: { type: "string", format: "uuid" },
      status: ref("RunpodStatus"),
      delayTime: { ...int, description: "ms from queued to started" },
      executionTime: { ...int, description: "ms from started to finished" },
      retries: int,
      output: { description: "The app's JSON answer (or its text)." },
      error: { type: "string" },
    },
    required: ["id", "status"],
    additionalProperties: false,
  },
  RunpodStream: {
    type: "object",
    properties: { status: ref("RunpodStatus"), stream: { type: "array", items: { type: "object", properties: { output: {} }, required: ["output"] } }, error: { type: "string" } },
    required: ["status", "stream"],
    additionalProperties: false,
  },
  RunpodPurge: {
    type: "object",
    properties: { removed: int, status: { type: "string" } },
    required: ["removed", "status"],
    additionalProperties: false,
  },
  RunpodHealth: {
    type: "object",
    properties: {
      jobs: {
        type: "object",
        properties: { completed: int, failed: int, inProgress: int, inQueue: int, retried: int },
        required: ["completed", "failed", "inProgress", "inQueue", "retried"],
        additionalProperties: false,
      },
      workers: {
        type: "object",
        properties: { idle: int, initializing: int, ready: int, running: int, throttled: int, unhealthy: int },
        required: ["idle", "running"],
        additionalProperties: false,
      },
    },
    required: ["jobs", "workers"],
    additionalProperties: false,
  },
  RunpodError: { type: "object", properties: { error: { type: "string" } }, required: ["error"], additionalProperties: false },
  ReplicateStatus: { type: "string", enum: ["starting", "processing", "succeeded", "failed", "canceled"] },
  ReplicateCreate: {
    type: "object",
    properties: {
      version: { type: "string", description: "The app (POST /predictions)." },
      input: { type: "object" },
      webhook: { type: "string", format: "uri" },
      webhook_events_filter: {
        type: "array",
        items: { type: "string", enum: ["start", "output", "logs", "completed"] },
        description: "Accepted; only `completed` is sent.",
      },
      stream: { type: "boolean" },
    },
    required: ["input"],
    additionalProperties: false,
  },
  ReplicatePrediction: {
    type: "object",
    properties: {
      id: { type: "string", format: "uuid" },
      model: { type: "string" },
      version: { type: "string" },
      input: {},
      output: {},
      logs: { type: "string" },
      error: { type: ["string", "null"] },
      status: ref("ReplicateStatus"),
      source: { type: "string" },
      data_removed: { type: "boolean" },
      created_at: nullableDateTime,
      started_at: nullableDateTime,
      completed_at: nullableDateTime,
      urls: {
        type: "object",
        properties: { get: { type: "string" }, cancel: { type: "string" }, web: { type: "string" } },
        required: ["get", "cancel"],
        additionalProperties: false,
      },
      metrics: { type: "object", properties: { predict_time: { type: "number" } }, additionalProperties: false },
    },
    required: ["id", "model", "version", "input", "output", "logs", "error", "status", "created_at", "urls"],
    additionalProperties: false,
  },
  ReplicatePredictionList: {
    type: "object",
    properties: { previous: { type: ["string", "null"] }, next: { type: ["string", "null"] }, results: { type: "array", items: ref("ReplicatePrediction") } },
    required: ["previous", "next", "results"],
    additionalProperties: false,
  },
  ReplicateProblem: {
    type: "object",
    properties: { title: { type: "string" }, detail: { type: "string" }, status: int },
    required: ["title", "detail", "status"],
    additionalProperties: false,
  },
};

/** RunPod, Replicate and Cerebrium compatibility. */
export const compatApi: OpenApiPart = {
  paths,
  schemas,
  tags: [
    { name: "runpod", description: "RunPod serverless's endpoint API: `runpodSdk(key, { baseUrl: \"<gateway>/v2\" })`." },
    { name: "replicate", description: "Replicate's predictions API: `new Replicate({ auth, baseUrl: \"<gateway>/replicate/v1\" })`." },
  ],
};
