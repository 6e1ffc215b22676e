import { LonghaulApiError } from "./errors.js";
import { readSse } from "./sse.js";
import {
  isFinished,
  type ApiKey,
  type App,
  type AppInput,
  type AppOutcomes,
  type CreatedApiKey,
  type Delivery,
  type KeyScope,
  type Project,
  type ProjectLimits,
  type Run,
  type RunList,
  type RetriedRuns,
  type RetryRunsFilter,
  type RunRequest,
  type RunResult,
  type RunStatus,
  type Stats,
  type WebhookSecret,
} from "./types.js";

/** Options of {@link LonghaulClient}. */
export interface LonghaulClientOptions {
  /** The gateway, e.g. `http://localhost:8080`. */
  baseUrl: string;
  /** A project's API key (or the operator key, for {@link LonghaulClient.admin}). */
  apiKey?: string;
  /**
   * The project of the key, used in the gateway path `/{project}/{app}/...`.
   * @default asked once from `GET /v1/project`
   */
  project?: string;
  /** Another fetch (a proxy's, a test's). @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Headers sent with every request (e.g. `user-agent`). */
  headers?: Record<string, string>;
}

/** The body of a call: bytes, text, a stream, or any other value sent as JSON. */
export type CallBody = string | Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array> | URLSearchParams | object;

/** A call to an app through the gateway. */
export interface CallOptions {
  /** @default "POST" when there is a body, else "GET" */
  method?: string;
  body?: CallBody;
  headers?: Record<string, string>;
  /** Query parameters for the app. */
  query?: Record<string, string> | URLSearchParams;
  signal?: AbortSignal;
}

/** The options of an async call (docs/HTTP-API.md "Async"). */
export interface SubmitOptions extends CallOptions {
  /** POST the app's answer here when the run finishes. */
  webhook?: string;
  idempotencyKey?: string;
  /** Shortens the app's timeout for this run (1..43200). */
  timeoutSeconds?: number;
  /** -100..100; higher runs first within an app. */
  priority?: number;
  /** Do not start before this time. */
  notBefore?: Date | string;
  /** Start no earlier than this many seconds from now. */
  delaySeconds?: number;
  /** Seconds from now within which the run must start, else it ends `expired` (1..2592000). */
  queueTtlSeconds?: number;
  /** Labels to find the run by (`GET /v1/runs?label=key:value`). */
  labels?: Record<string, string>;
}

/** What an accepted async call answers. */
export interface Accepted {
  runId: string;
  /** `/v1/runs/{id}`. */
  location: string | null;
}

/** The filters of a run listing (`GET /v1/runs`). */
export interface ListRunsFilter {
  app?: string;
  status?: RunStatus;
  createdAfter?: Date | string;
  createdBefore?: Date | string;
  /** One code (`502`) or a class (`5xx`). */
  statusCode?: string | number;
  idPrefix?: string;
  /** `{team: "ml"}`: runs carrying every label named. */
  labels?: Record<string, string>;
  /** Page size, 1..500. @default 50 */
  pageSize?: number;
  cursor?: string;
  signal?: AbortSignal;
}

/** Options of {@link LonghaulClient.wait}. */
export interface WaitOptions {
  /** Give up after this many seconds and return the run as it is then. @default no limit */
  timeoutSeconds?: number;
  signal?: AbortSignal;
  /** Called with the run after each poll (a status line, say). */
  onUpdate?: (run: Run) => void;
}

/** Options of the event streams. */
export interface EventsOptions {
  signal?: AbortSignal;
  /** Longest pause between reconnects, in ms. @default 30000 */
  maxReconnectDelayMs?: number;
}

/** Longest `?wait=` the API takes. */
const MAX_WAIT_SECONDS = 60;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason as Error);
      },
      { once: true },
    );
  });

const iso = (d: Date | string | undefined) => (d === undefined ? undefined : typeof d === "string" ? d : d.toISOString());
const seg = encodeURIComponent;

/**
 * A client of Longhaul's HTTP API (docs/HTTP-API.md; the OpenAPI document at
 * `GET /v1/openapi.json`). Every method that answers JSON throws
 * {@link LonghaulApiError} on an error answer.
 */
export class LonghaulClient {
  readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly fetchFn: typeof fetch;
  private readonly headers: Record<string, string>;
  private projectName: Promise<string> | undefined;

  constructor(options: LonghaulClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.fetchFn = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.headers = options.headers ?? {};
    if (options.project) this.projectName = Promise.resolve(options.project);
  }

  /** One request; the raw answer, whatever its status. A network failure is a LonghaulApiError `unavailable` (status 0). */
  async fetch(path: string, init: RequestInit & { query?: Record<string, string | string[] | undefined> | URLSearchParams } = {}): Promise<Response> {
    const url = new URL(this.baseUrl + path);
    if (init.query instanceof URLSearchParams) {
      for (const [k, v] of init.query) url.searchParams.append(k, v);
    } else if (init.query) {
      for (const [k, v] of Object.entries(init.query)) {
        for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) url.searchParams.append(k, one);
      }
    }
    const headers = new Headers(this.headers);
    if (this.apiKey) headers.set("authorization", `Bearer ${this.apiKey}`);
    for (const [k, v] of new Headers(init.headers)) headers.set(k, v);
    const { query: _query, ...rest } = init;
    try {
      return await this.fetchFn(url, { ...rest, headers });
    } catch (err) {
      if (init.signal?.aborted) throw err;
      throw new LonghaulApiError("unavailable", `cannot reach ${this.baseUrl}: ${(err as Error).message}`, 0, undefined, undefined, { cause: err });
    }
  }

  /** A JSON request; the parsed answer of a 2xx, else a LonghaulApiError. */
  private async json<T>(method: string, path: string, init: { body?: unknown; query?: Record<string, string | string[] | undefined>; signal?: AbortSignal } = {}): Promise<T> {
    const res = await this.fetch(path, {
      method,
      query: init.query,
      signal: init.signal,
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body), headers: { "content-type": "application/json" } }),
    });
    if (!res.ok) throw await LonghaulApiError.fromResponse(res);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** The project of the key (`GET /v1/project`). */
  async project(): Promise<string> {
    this.projectName ??= this.json<{ project: string }>("GET", "/v1/project").then((p) => p.project);
    try {
      return await this.projectName;
    } catch (err) {
      this.projectName = undefined;
      throw err;
    }
  }

  private async gatewayRequest(app: string, path: string, options: CallOptions, extraQuery: Record<string, string>, extraHeaders: Record<string, string>) {
    const project = await this.project();
    const rel = path.startsWith("/") ? path : `/${path}`;
    const query = new URLSearchParams(options.query instanceof URLSearchParams ? options.query : (options.query ?? {}));
    for (const [k, v] of Object.entries(extraQuery)) query.set(k, v);
    const headers: Record<string, string> = { ...extraHeaders, ...options.headers };
    let body: BodyInit | undefined;
    const b = options.body;
    if (b === undefined || typeof b === "string" || b instanceof Uint8Array || b instanceof ArrayBuffer || b instanceof Blob || b instanceof ReadableStream || b instanceof URLSearchParams) {
      body = b as BodyInit | undefined;
    } else {
      body = JSON.stringify(b);
      if (!Object.keys(headers).some((k) => k.toLowerCase() === "content-type")) headers["content-type"] = "application/json";
    }
    const method = options.method ?? (body === undefined ? "GET" : "POST");
    return this.fetch(`/${seg(project)}/${seg(app)}${rel}`, {
      method,
      query,
      headers,
      body,
      signal: options.signal,
      // A stream body needs half duplex (fetch standard).
      ...(body instanceof ReadableStream ? { duplex: "half" } : {}),
    } as RequestInit);
  }

  /** Submits an async call (`?async=true`): resolves once the run is committed. */
  async submit(app: string, path = "/", options: SubmitOptions = {}): Promise<Accepted> {
    const headers: Record<string, string> = {};
    if (options.idempotencyKey !== undefined) headers["idempotency-key"] = options.idempotencyKey;
    if (options.timeoutSeconds !== undefined) headers["x-longhaul-timeout"] = String(options.timeoutSeconds);
    if (options.priority !== undefined) headers["x-longhaul-priority"] = String(options.priority);
    if (options.notBefore !== undefined) headers["x-longhaul-not-before"] = iso(options.notBefore)!;
    if (options.delaySeconds !== undefined) headers["x-longhaul-delay"] = String(options.delaySeconds);
    if (options.queueTtlSeconds !== undefined) headers["x-longhaul-queue-ttl"] = String(options.queueTtlSeconds);
    if (options.labels) headers["x-longhaul-labels"] = Object.entries(options.labels).map(([k, v]) => `${k}=${v}`).join(",");
    const query: Record<string, string> = { async: "true" };
    if (options.webhook !== undefined) query.webhookEndpoint = options.webhook;
    const res = await this.gatewayRequest(app, path, options, query, headers);
    if (res.status !== 202) throw await LonghaulApiError.fromResponse(res);
    const body = (await res.json()) as { run_id: string };
    return { runId: body.run_id, location: res.headers.get("location") };
  }

  /**
   * A sync call: the app's answer as it streams back (any status: it is the
   * app's). Longhaul's own errors (401, 404 of an unknown app, 503) come
   * back the same way, as JSON `{"error"}`.
   */
  async call(app: string, path = "/", options: CallOptions = {}): Promise<Response> {
    return this.gatewayRequest(app, path, options, {}, {});
  }

  /** A run; with `waitSeconds` (≤ 60) the answer comes once it is finished or when the wait is over. */
  getRun(id: string, options: { waitSeconds?: number; signal?: AbortSignal } = {}): Promise<Run> {
    const wait = options.waitSeconds ? String(Math.min(MAX_WAIT_SECONDS, Math.max(0, Math.floor(options.waitSeconds)))) : undefined;
    return this.json<Run>("GET", `/v1/runs/${seg(id)}`, { query: { wait }, signal: options.signal });
  }

  /** Long-polls until the run is finished (or `timeoutSeconds` pass: then the run as it is). */
  async wait(id: string, options: WaitOptions = {}): Promise<Run> {
    const deadline = options.timeoutSeconds === undefined ? Infinity : Date.now() + options.timeoutSeconds * 1000;
    for (;;) {
      const left = Math.ceil((deadline - Date.now()) / 1000);
      const run = await this.getRun(id, { waitSeconds: Math.max(0, Math.min(MAX_WAIT_SECONDS, left)), signal: options.signal });
      options.onUpdate?.(run);
      if (isFinished(run) || Date.now() >= deadline) return run;
    }
  }

  /** The app's stored answer as an envelope (`?format=json`, body in base64). */
  result(id: string, signal?: AbortSignal): Promise<RunResult> {
    return this.json<RunResult>("GET", `/v1/runs/${seg(id)}/result`, { query: { format: "json" }, signal });
  }

  /** The app's stored answer, raw, under its content type (status in `X-Longhaul-Status-Code`). */
  async resultResponse(id: string, signal?: AbortSignal): Promise<Response> {
    const res = await this.fetch(`/v1/runs/${seg(id)}/result`, { signal });
    if (!res.ok) throw await LonghaulApiError.fromResponse(res);
    return res;
  }

  /** What was sent to the app (secrets masked). */
  request(id: string, signal?: AbortSignal): Promise<RunRequest> {
    return this.json<RunRequest>("GET", `/v1/runs/${seg(id)}/request`, { signal });
  }

  /** One page of runs, newest first. */
  listRunsPage(filter: ListRunsFilter = {}): Promise<RunList> {
    return this.json<RunList>("GET", "/v1/runs", {
      signal: filter.signal,
      query: {
        app: filter.app,
        status: filter.status,
        created_after: iso(filter.createdAfter),
        created_before: iso(filter.createdBefore),
        status_code: filter.statusCode === undefined ? undefined : String(filter.statusCode),
        id_prefix: filter.idPrefix,
        label: filter.labels ? Object.entries(filter.labels).map(([k, v]) => `${k}:${v}`) : undefined,
        limit: filter.pageSize === undefined ? undefined : String(filter.pageSize),
        cursor: filter.cursor,
      },
    });
  }

  /** Every run matching the filter, newest first, page after page (cursor pagination). */
  async *listRuns(filter: ListRunsFilter = {}): AsyncGenerator<Run> {
    let cursor = filter.cursor;
    do {
      const page = await this.listRunsPage({ ...filter, cursor });
      yield* page.runs;
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
  }

  /** Cancels a queued or running run; answers it (`cancelled`). */
  cancel(id: string): Promise<Run> {
    return this.json<Run>("POST", `/v1/runs/${seg(id)}/cancel`);
  }

  /** A new run with the stored request of this one. */
  async retry(id: string): Promise<Accepted> {
    const res = await this.fetch(`/v1/runs/${seg(id)}/retry`, { method: "POST" });
    if (!res.ok) throw await LonghaulApiError.fromResponse(res);
    return { runId: ((await res.json()) as { run_id: string }).run_id, location: res.headers.get("location") };
  }

  /** Bulk recovery: retries every finished run the filter matches (each once); `more` says to send it again. */
  retryRuns(filter: RetryRunsFilter = {}): Promise<RetriedRuns> {
    return this.json<RetriedRuns>("POST", "/v1/runs/retry", { body: filter });
  }

  /** The run's webhook delivery and its attempts. */
  deliveries(id: string): Promise<Delivery> {
    return this.json<Delivery>("GET", `/v1/runs/${seg(id)}/deliveries`);
  }

  /** Delivers a finished run's webhook again. */
  redeliver(id: string): Promise<Delivery> {
    return this.json<Delivery>("POST", `/v1/runs/${seg(id)}/webhook/redeliver`);
  }

  /**
   * The run now, then at each change, over server-sent events
   * (`GET /v1/runs/{id}/events`); reconnects when the stream drops, and ends
   * once the run is finished.
   */
  async *events(id: string, options: EventsOptions = {}): AsyncGenerator<Run> {
    let last: Run | undefined;
    for await (const run of this.sse(`/v1/runs/${seg(id)}/events`, () => undefined, options)) {
      last = run;
      yield run;
      if (isFinished(run)) return;
    }
    if (last && !isFinished(last)) throw new Error("event stream ended before the run finished");
  }

  /**
   * The project's runs as they are created and change (`GET /v1/events`),
   * until `signal` aborts. On a reconnect it asks for the runs created since
   * the drop (`since`), so none created meanwhile is missed; a change of an
   * older run during the gap may be (docs/HTTP-API.md): reload what you show.
   */
  watchProject(options: EventsOptions & { app?: string } = {}): AsyncGenerator<Run> {
    let since: string | undefined;
    return this.sse(
      "/v1/events",
      () => {
        const q: Record<string, string> = {};
        if (options.app) q.app = options.app;
        if (since) q.since = since;
        since = new Date().toISOString();
        return q;
      },
      { ...options, forever: true },
    );
  }

  /** Reads an SSE route's `run` frames, reconnecting with backoff on a drop, a 5xx or a network failure. */
  private async *sse(
    path: string,
    query: () => Record<string, string> | undefined,
    options: EventsOptions & { forever?: boolean },
  ): AsyncGenerator<Run> {
    let retryMs = 3000;
    let failures = 0;
    const maxDelay = options.maxReconnectDelayMs ?? 30_000;
    for (;;) {
      let res: Response | undefined;
      try {
        res = await this.fetch(path, { query: query(), headers: { accept: "text/event-stream" }, signal: options.signal });
      } catch (err) {
        if (options.signal?.aborted) return;
        if (!(err instanceof LonghaulApiError)) throw err;
      }
      if (res && !res.ok) {
        const err = await LonghaulApiError.fromResponse(res);
        // A 4xx will not change by asking again; a 429 or 5xx may.
        if (res.status < 500 && res.status !== 429) throw err;
      }
      if (res?.ok && res.body) {
        try {
          for await (const frame of readSse(res.body, (ms) => (retryMs = ms))) {
            failures = 0;
            if (frame.event === "run") yield JSON.parse(frame.data) as Run;
            // `event: error`: the server ends the stream; reconnect as after a drop.
          }
        } catch (err) {
          if (options.signal?.aborted) return;
          if (err instanceof SyntaxError) throw err;
        }
      }
      if (options.signal?.aborted) return;
      failures++;
      await sleep(Math.min(maxDelay, retryMs * 2 ** Math.min(failures - 1, 4) * (0.5 + Math.random() / 2)), options.signal).catch(() => {});
      if (options.signal?.aborted) return;
    }
  }

  /** The project's apps. */
  async listApps(): Promise<App[]> {
    return (await this.json<{ apps: App[] }>("GET", "/v1/apps")).apps;
  }

  getApp(name: string): Promise<App> {
    return this.json<App>("GET", `/v1/apps/${seg(name)}`);
  }

  /** Creates or replaces an app. */
  putApp(name: string, app: AppInput): Promise<App> {
    return this.json<App>("PUT", `/v1/apps/${seg(name)}`, { body: app });
  }

  async deleteApp(name: string): Promise<void> {
    await this.json<void>("DELETE", `/v1/apps/${seg(name)}`);
  }

  /** Holds the app's queue: queued runs wait, running ones finish. */
  pauseApp(name: string): Promise<App> {
    return this.json<App>("POST", `/v1/apps/${seg(name)}/pause`);
  }

  resumeApp(name: string): Promise<App> {
    return this.json<App>("POST", `/v1/apps/${seg(name)}/resume`);
  }

  /** The app's recent runs counted by status. */
  appOutcomes(name: string, windowSeconds?: number): Promise<AppOutcomes> {
    return this.json<AppOutcomes>("GET", `/v1/apps/${seg(name)}/outcomes`, {
      query: { window_seconds: windowSeconds === undefined ? undefined : String(windowSeconds) },
    });
  }

  /** The project's webhook signing secret (and the previous one during a rotation). */
  webhookSecret(): Promise<WebhookSecret> {
    return this.json<WebhookSecret>("GET", "/v1/webhooks/secret");
  }

  rotateWebhookSecret(): Promise<WebhookSecret> {
    return this.json<WebhookSecret>("POST", "/v1/webhooks/secret/rotate");
  }

  /** The dashboard's figures over a window. */
  stats(query: { window?: "1h" | "24h" | "7d"; app?: string; mode?: "async" | "sync" } = {}): Promise<Stats> {
    return this.json<Stats>("GET", "/v1/stats", { query: { ...query } });
  }

  /** The operator's API (`/v1/admin/...`); the client's key must be the operator key. */
  get admin() {
    return {
      listProjects: async (): Promise<Project[]> => (await this.json<{ projects: Project[] }>("GET", "/v1/admin/projects")).projects,
      getProject: (name: string) => this.json<Project>("GET", `/v1/admin/projects/${seg(name)}`),
      createProject: (name: string) => this.json<Project>("POST", "/v1/admin/projects", { body: { name } }),
      deleteProject: (name: string) => this.json<void>("DELETE", `/v1/admin/projects/${seg(name)}`),
      /** Changes the limits named; the others stay. 0 = unlimited. */
      setLimits: (name: string, limits: Partial<ProjectLimits>) =>
        this.json<Project>("PATCH", `/v1/admin/projects/${seg(name)}`, { body: { limits } }),
      listKeys: async (project: string): Promise<ApiKey[]> =>
        (await this.json<{ keys: ApiKey[] }>("GET", `/v1/admin/projects/${seg(project)}/keys`)).keys,
      createKey: (project: string, key: { name: string; scopes: KeyScope[] }) =>
        this.json<CreatedApiKey>("POST", `/v1/admin/projects/${seg(project)}/keys`, { body: key }),
      revokeKey: (id: string) => this.json<void>("DELETE", `/v1/admin/keys/${seg(id)}`),
      whoAmI: () => this.json<{ role: string; key_fingerprint: string }>("GET", "/v1/admin/whoami"),
    };
  }

  /** The project's own keys (`/v1/keys`; a key with the `admin` scope). */
  get keys() {
    return {
      list: async (): Promise<ApiKey[]> => (await this.json<{ keys: ApiKey[] }>("GET", "/v1/keys")).keys,
      create: (key: { name: string; scopes: KeyScope[] }) => this.json<CreatedApiKey>("POST", "/v1/keys", { body: key }),
      revoke: (id: string) => this.json<void>("DELETE", `/v1/keys/${seg(id)}`),
    };
  }
}
