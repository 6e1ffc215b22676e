// Every route the gateway serves is in the OpenAPI document, under the same
// method: a route added without its documentation fails here, before any
// end-to-end test meets it.
import { describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { createRegistry } from "@longhaul/shared/metrics";
import { createAuthenticator } from "../../core/auth.js";
import type { MeshPorts } from "../../core/ports.js";
import { loadDashboardAssets } from "./dashboard-assets.js";
import { dashboardRoutes } from "./dashboard-routes.js";
import { docsRoutes, loadDocsAssets, servedOpenApiDocument } from "./openapi-routes.js";
import { createHttpGateway } from "./server.js";

const METHODS = ["get", "post", "put", "patch", "delete"];

describe("the OpenAPI document", () => {
  it("names every route of the gateway, with its methods", async () => {
    const [docs, dashboard] = await Promise.all([loadDocsAssets(), loadDashboardAssets()]);
    const ports = {} as MeshPorts;
    const gateway = createHttpGateway({
      log: createLogger("coverage", "silent"),
      registry: createRegistry("coverage"),
      ports,
      authenticator: createAuthenticator({ resolve: async () => ({ project: "x", scopes: [] }) } as never, { cacheSeconds: 0 }),
      limits: { maxBodyBytes: 1, sseHeartbeatSeconds: 1, sseMaxSeconds: 10, feedMaxWatched: 1 },
      resultUrlKey: Buffer.alloc(32),
      extraRoutes: () => [...docsRoutes(docs), ...dashboardRoutes(dashboard)],
    });
    const doc = servedOpenApiDocument() as { paths: Record<string, Record<string, unknown>> };
    // `/:project/:app/*` is `/{project}/{app}/{path}` (a trailing {path} takes the rest).
    const toTemplate = (pattern: string) => pattern.replace(/\/\*$/, "/{path}").replace(/:([A-Za-z]+)/g, "{$1}");
    const shape = (t: string) => t.replace(/\{[^}]+\}/g, "{}");
    const byShape = new Map(Object.entries(doc.paths).map(([t, item]) => [shape(t), item]));
    const missing: string[] = [];
    expect(gateway.routes.length).toBeGreaterThan(40);
    for (const route of gateway.routes) {
      const own = shape(toTemplate(route.pattern));
      // A route below a documented catch-all (`/dashboard/{path}`) is described by it.
      const cover = [...byShape.entries()].find(([t]) => t.endsWith("/{}") && own.startsWith(t.slice(0, -2)))?.[1];
      const item = byShape.get(own) ?? cover;
      const methods = route.method === "*" ? METHODS : route.method === "HEAD" ? ["get"] : [route.method.toLowerCase()];
      for (const m of methods) if (!item?.[m]) missing.push(`${m.toUpperCase()} ${route.pattern}`);
    }
    expect(missing).toEqual([]);
  });
});
