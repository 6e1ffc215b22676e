import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { LonghaulError } from "@longhaul/shared/errors";
import type { Logger } from "@longhaul/shared/logger";
import type { Registry } from "@longhaul/shared/metrics";
import { context, startServerSpan } from "@longhaul/shared/telemetry";
import type { Authenticator } from "../../core/auth.js";
import type { MeshPorts } from "../../core/ports.js";
import { adminRoutes } from "./admin-routes.js";
import { appRoutes } from "./app-routes.js";
import { feedRoutes } from "./feed-routes.js";
import { gatewayRoutes } from "./gateway-routes.js";
import { openApiRoutes } from "./openapi-routes.js";
import { replicateRoutes } from "./replicate-routes.js";
import { runpodRoutes } from "./runpod-routes.js";
import { sendError, sendJson } from "./http-io.js";
import { createHttpMetrics } from "./http-metrics.js";
import { Router, type RequestContext, type Route } from "./router.js";
import type { HttpLimits, RouteDeps } from "./route-deps.js";
import { runRoutes } from "./run-routes.js";
import { statsRoutes } from "./stats-routes.js";
import { webhookRoutes } from "./webhook-routes.js";

/*
 * Why node:http and not fastify: the gateway's main job is raw streaming
 * (any content type, bytes passed through untouched, a sync answer streamed
 * back as it arrives for up to 12 h, SSE). With node:http the request and
 * response are the streams themselves, with no body parsers to bypass and no
 * reply lifecycle to fight; the control API needs only a small router.
 */

/** Options of {@link createHttpGateway}. */
export interface HttpGatewayOptions {
  log: Logger;
  registry: Registry;
  ports: MeshPorts;
  authenticator: Authenticator;
  limits: HttpLimits;
  resultUrlKey: Buffer;
  /**
   * How long an idle keep-alive connection stays open (`server.keepAliveTimeout`),
   * in milliseconds: longer than the idle timeout of a load balancer in front.
   * @default 65000
   */
  keepAliveTimeoutMs?: number;
  /**
   * More routes, built from the same deps (the dashboard plugs in
   * here as `/dashboard/...`); literal first segments are reserved from the
   * gateway automatically.
   */
  extraRoutes?: (deps: RouteDeps) => Route[];
  now?: () => Date;
}

/** The HTTP gateway: an unstarted server and its lifecycle. */
export interface HttpGateway {
  server: Server;
  /** Every route it serves (the OpenAPI document must name each: openapi-coverage.test.ts). */
  routes: readonly Route[];
  /** Starts listening; resolves with the bound port. */
  listen(host: string, port: number): Promise<number>;
  /** Stops accepting, lets answers in flight finish for up to `graceMs`, then cuts the rest. */
  close(graceMs: number): Promise<void>;
}

/** Idle keep-alive connections are closed after this long by default: above the 60 s idle timeout of common load balancers. */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** Time a request's headers may take, at least. */
const HEADERS_TIMEOUT_MS = 60_000;

/** Builds the gateway: `/{project}/{app}/...`, `/v1/...` (and its OpenAPI document), `/healthz`. */
export function createHttpGateway(options: HttpGatewayOptions): HttpGateway {
  const { log, registry } = options;
  const metrics = createHttpMetrics(registry);
  const deps: RouteDeps = {
    ports: options.ports,
    authenticator: options.authenticator,
    metrics,
    limits: options.limits,
    resultUrlKey: options.resultUrlKey,
    now: options.now ?? (() => new Date()),
  };

  const router = new Router();
  const routes = [
    ...opsRoutes(options),
    ...runRoutes(deps),
    ...webhookRoutes(deps),
    ...appRoutes(deps),
    ...adminRoutes(deps),
    ...feedRoutes(deps),
    ...statsRoutes(deps),
    ...openApiRoutes(),
    ...runpodRoutes(deps),
    ...replicateRoutes(deps),
    ...(options.extraRoutes?.(deps) ?? []),
    ...gatewayRoutes(deps),
  ];
  for (const r of routes) router.add(r);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = process.hrtime.bigint();
    const method = req.method ?? "GET";
    const rawUrl = req.url ?? "/";
    const q = rawUrl.indexOf("?");
    const rawPath = q === -1 ? rawUrl : rawUrl.slice(0, q);
    const rawQuery = q === -1 ? "" : rawUrl.slice(q + 1);
    let routeLabel = "unmatched";
    const gone = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) gone.abort(new LonghaulError("unavailable", "client went away"));
      const status = res.headersSent ? String(res.statusCode) : "499";
      metrics.requests.inc({ route: routeLabel, method, status });
      metrics.duration.observe({ route: routeLabel, method }, Number(process.hrtime.bigint() - started) / 1e9);
    });
    let reqLog = log;
    try {
      const match = rawPath.startsWith("/") ? router.match(method, rawPath) : undefined;
      if (!match) throw new LonghaulError("not_found", `no route for ${method} ${rawPath}`);
      routeLabel = match.route.pattern;
      reqLog = log.child({ method, route: routeLabel });
      const caller = match.route.auth ? await options.authenticator.authenticate(req.headers.authorization) : undefined;
      const scope = match.route.scope;
      if (caller && scope && !caller.scopes.includes(scope)) {
        throw new LonghaulError(
          "permission_denied",
          `${method} ${match.route.pattern} needs the '${scope}' scope; this key has ${caller.scopes.map((s) => `'${s}'`).join(", ") || "no scope"}`,
        );
      }
      const ctx: RequestContext = {
        req,
        res,
        params: match.params,
        rest: match.rest,
        rawQuery,
        query: new URLSearchParams(rawQuery),
        signal: gone.signal,
        log: reqLog,
        get caller() {
          if (!caller) throw new LonghaulError("internal", "internal error", { cause: new Error("route has no caller") });
          return caller;
        },
      };
      await match.route.handler(ctx);
    } catch (err) {
      if (gone.signal.aborted) {
        // Nobody to answer; the gRPC call behind it was cancelled through the signal.
        reqLog.debug({ err, route: routeLabel }, "client went away");
        res.destroy();
        return;
      }
      sendError(res, err, reqLog);
    }
  };

  const keepAliveTimeout = options.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS;
  // At close, Node lets a connection whose answer ends after server.close()
  // stay open, idle, for the whole keep-alive timeout: answers in flight
  // then say `Connection: close`, and those already under way free their
  // connection as they end.
  let closing = false;
  const inFlight = new Set<ServerResponse>();
  const server: Server = createServer(
    {
      // Sync calls may upload slowly and be held up to 12 h: no whole-request
      // timeout (Node's default is 300 s, TOOLCHAIN.md); headers must still come quickly.
      requestTimeout: 0,
      // Above the keep-alive timeout: the wait for a kept-alive connection's next headers never ends it first.
      headersTimeout: Math.max(HEADERS_TIMEOUT_MS, keepAliveTimeout + 1_000),
      // An idle connection outlives a load balancer's idle timeout: the balancer closes it, never
      // the gateway under a request the balancer is sending (the client would see a reset).
      keepAliveTimeout,
    },
    (req, res) => {
      inFlight.add(res);
      if (closing) res.shouldKeepAlive = false;
      res.once("close", () => {
        inFlight.delete(res);
        if (closing) setImmediate(() => server.closeIdleConnections());
      });
      // The request's own span, in the caller's trace when it sent a traceparent (when no instrumentation makes one).
      const serverSpan = startServerSpan(`${req.method ?? "GET"}`, (name) => {
        const value = req.headers[name];
        return typeof value === "string" ? value : undefined;
      });
      const handled = serverSpan ? context.with(serverSpan.context, () => handle(req, res)) : handle(req, res);
      handled
        .catch((err: unknown) => {
          log.error({ err }, "request handler failed");
          res.destroy();
        })
        .finally(() => serverSpan?.span.end());
    },
  );

  return {
    server,
    routes,
    listen: (host, port) =>
      new Promise<number>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve((server.address() as AddressInfo).port);
        });
      }),
    close: (graceMs) =>
      new Promise<void>((resolve) => {
        closing = true;
        for (const res of inFlight) if (!res.headersSent) res.shouldKeepAlive = false;
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

/** `/healthz`: 200 while the scheduler answers its health check. (`/metrics` has its own port: INGRESS_METRICS_PORT.) */
function opsRoutes(options: HttpGatewayOptions): Route[] {
  return [
    {
      method: "GET",
      pattern: "/healthz",
      auth: false,
      handler: async (ctx) => {
        const serving = await options.ports.health.schedulerServing();
        sendJson(ctx.res, serving ? 200 : 503, { status: serving ? "ok" : "scheduler unavailable" });
      },
    },
  ];
}
