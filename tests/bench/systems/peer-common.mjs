// What a user would write to get "async requests" out of a Postgres job queue
// (pg-boss or graphile-worker), shared by both peer builds:
// - an HTTP endpoint `POST /<app>/<path>?webhookEndpoint=…` that checks a
//   bearer key, stores the request as a job and answers 202 {"run_id"} once
//   the job is committed, as Longhaul's gateway does;
// - a job handler that makes the plain HTTP call to the app, then POSTs the
//   app's answer to the webhook, signed as Standard Webhooks says (HMAC-SHA256,
//   as Longhaul's notifier signs).
// HTTP out goes through one keep-alive agent per process, as a tuned build would.
import http from "node:http";
import { createHmac, randomUUID } from "node:crypto";

export const API_KEY = "bench_peer_key_0123456789";
const SECRET = Buffer.from("bench-webhook-secret-0123456789abcdef");
const MAX_BODY = 10 * 1024 * 1024;
// Sockets per host: 512, or more when the settings hold more calls at once (the long-call scenario).
const sockets = Math.max(512, Number(JSON.parse(process.env.BENCH_PEER_SETTINGS ?? "{}").settings?.httpSockets) || 0);
const agent = new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: 512 });
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "host", "authorization", "content-length", "upgrade", "te", "trailer"]);

/** One HTTP call with the shared agent; resolves with status, headers and the whole body. */
export function httpCall(url, { method = "GET", headers = {}, body } = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { agent, host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

function reply(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/**
 * The submit endpoint. `enqueue(job)` stores the job and resolves with its id
 * once committed.
 * @param {(job: object) => Promise<string>} enqueue
 * @returns {Promise<number>} the port it listens on (loopback)
 */
export function startApi(enqueue) {
  const server = http.createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${API_KEY}`) return reply(res, 401, { error: { code: "unauthenticated" } });
    const u = new URL(req.url ?? "/", "http://x");
    const [, app, ...rest] = u.pathname.split("/");
    const webhook = u.searchParams.get("webhookEndpoint");
    if (!app) return reply(res, 404, { error: { code: "not_found" } });
    if (webhook !== null && !/^https?:\/\//.test(webhook)) return reply(res, 400, { error: { code: "invalid_argument" } });
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on("end", () => {
      if (size > MAX_BODY) return reply(res, 413, { error: { code: "too_large" } });
      u.searchParams.delete("webhookEndpoint");
      u.searchParams.delete("async");
      const headers = Object.entries(req.headers).filter(([k]) => !HOP_BY_HOP.has(k));
      const job = {
        app,
        method: req.method,
        path: `/${rest.join("/")}`,
        query: u.searchParams.toString(),
        headers,
        body: Buffer.concat(chunks).toString("base64"),
        webhook,
      };
      enqueue(job).then(
        (id) => reply(res, 202, { run_id: String(id) }, { location: `/runs/${id}` }),
        () => reply(res, 503, { error: { code: "unavailable" } }),
      );
    });
  });
  server.keepAliveTimeout = 120_000;
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server.address().port)));
}

/**
 * The job handler: call the app, then deliver the webhook. Throws on a
 * connection error or a webhook the receiver did not take, so that the
 * queue's retry policy applies.
 * @param {string} appUrl base URL of the app
 */
export async function runJob(appUrl, job, id) {
  const headers = Object.fromEntries(job.headers);
  headers["x-run-id"] = String(id);
  headers["idempotency-key"] = String(id);
  const out = await httpCall(`${appUrl}${job.path}${job.query ? `?${job.query}` : ""}`, {
    method: job.method,
    headers,
    body: Buffer.from(job.body, "base64"),
  });
  if (!job.webhook) return out.status;
  const msgId = `msg_${randomUUID()}`;
  const ts = Math.floor(Date.now() / 1000);
  const sig = createHmac("sha256", SECRET).update(`${msgId}.${ts}.`).update(out.body).digest("base64");
  const hook = await httpCall(job.webhook, {
    method: "POST",
    headers: {
      "content-type": out.headers["content-type"] ?? "application/octet-stream",
      "x-run-id": String(id),
      "x-run-status-code": String(out.status),
      "webhook-id": msgId,
      "webhook-timestamp": String(ts),
      "webhook-signature": `v1,${sig}`,
    },
    body: out.body,
  });
  if (hook.status < 200 || hook.status >= 300) throw new Error(`webhook answered ${hook.status}`);
  return out.status;
}
