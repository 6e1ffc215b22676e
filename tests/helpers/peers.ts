import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One request as a peer received it. */
export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  at: number;
}

/**
 * A real HTTP server on loopback that records every request and answers with
 * the handler of the test (or 200 `{"ok":true}`). It answers only when the
 * handler says so: a plain synchronous app, as Longhaul's users have.
 */
export interface Peer {
  url: string;
  port: number;
  received: Received[];
  /** Resolves once `n` requests (matching `path`, if given) have arrived. */
  waitFor(n: number, path?: string, timeoutMs?: number): Promise<Received[]>;
  handle(fn: (req: Received, res: ServerResponse, raw: IncomingMessage) => unknown): void;
  close(): Promise<void>;
}

export async function startPeer(): Promise<Peer> {
  const received: Received[] = [];
  const waiters: (() => void)[] = [];
  let handler: (req: Received, res: ServerResponse, raw: IncomingMessage) => unknown = (_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"ok":true}');
  };
  const server: Server = createServer((raw, res) => {
    const chunks: Buffer[] = [];
    raw.on("data", (c: Buffer) => chunks.push(c));
    raw.on("end", () => {
      const req = { method: raw.method ?? "", url: raw.url ?? "", headers: raw.headers, body: Buffer.concat(chunks), at: Date.now() };
      received.push(req);
      for (const w of waiters.splice(0)) w();
      Promise.resolve(handler(req, res, raw)).catch((err: unknown) => {
        res.destroy(err as Error);
      });
    });
  });
  // Long holds must not be cut by Node's own server timeouts.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const matching = (path?: string) => received.filter((r) => !path || r.url.split("?")[0] === path);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    handle(fn) {
      handler = fn;
    },
    waitFor(n, path, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`peer: ${matching(path).length}/${n} requests for ${path ?? "*"} after ${timeoutMs} ms`)), timeoutMs);
        const check = () => {
          if (matching(path).length >= n) {
            clearTimeout(timer);
            resolve(matching(path));
          } else waiters.push(check);
        };
        check();
      });
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Polls `fn` until it returns a truthy value, or fails after `timeoutMs`. */
export async function eventually<T>(fn: () => Promise<T | undefined | false>, timeoutMs = 20_000, what = "condition"): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/** A small client of the gateway for tests. */
export function gateway(baseUrl: string, apiKey: string) {
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${apiKey}`,
        ...(body !== undefined && typeof body !== "string" ? { "content-type": "application/json" } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  };
  return {
    call,
    putApp: (name: string, app: Record<string, unknown>) => call("PUT", `/v1/apps/${name}`, app),
    getRun: (id: string, wait = 0) => call("GET", `/v1/runs/${id}${wait ? `?wait=${wait}` : ""}`),
    /** Waits (long-polling) until the run has a finished status. */
    async finished(id: string, timeoutMs = 30_000) {
      return eventually(async () => {
        const r = await call("GET", `/v1/runs/${id}?wait=5`);
        return ["succeeded", "failed", "timed_out", "cancelled", "expired"].includes(r.json?.status) ? r.json : undefined;
      }, timeoutMs, `run ${id} to finish`);
    },
  };
}
