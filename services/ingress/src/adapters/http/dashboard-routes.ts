import type { IncomingMessage, ServerResponse } from "node:http";
import { LonghaulError } from "@longhaul/shared/errors";
import type { Asset, DashboardAssets } from "./dashboard-assets.js";
import type { Route } from "./router.js";

/**
 * The page is public (it holds no data; the API calls it makes carry the
 * key). The CSP allows only the dashboard's own files and same-origin API
 * calls, with no inline script or style: a stored body or header shown on
 * the page can never run as code next to the key in sessionStorage.
 */
const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

/** Versioned assets never change under their URL. */
const IMMUTABLE = "public, max-age=31536000, immutable";
/** The shell names the current version: always revalidated (a 304 when unchanged). */
const REVALIDATE = "no-cache";

/** Sends an asset: 304 on a matching If-None-Match, else the best encoding the client takes. */
export function sendAsset(
  req: IncomingMessage,
  res: ServerResponse,
  a: Asset,
  cacheControl: string,
  securityHeaders: Record<string, string> = SECURITY_HEADERS,
): void {
  const headers: Record<string, string | number> = {
    ...securityHeaders,
    "content-type": a.contentType,
    "cache-control": cacheControl,
    etag: a.etag,
    vary: "accept-encoding",
  };
  const inm = req.headers["if-none-match"];
  if (inm && inm.split(",").some((t) => t.trim().replace(/^W\//, "") === a.etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const accept = String(req.headers["accept-encoding"] ?? "");
  let body = a.body;
  if (/\bbr\b/.test(accept)) {
    body = a.br;
    headers["content-encoding"] = "br";
  } else if (/\bgzip\b/.test(accept)) {
    body = a.gzip;
    headers["content-encoding"] = "gzip";
  }
  headers["content-length"] = body.length;
  res.writeHead(200, headers);
  res.end(req.method === "HEAD" ? undefined : body);
}

/**
 * `/dashboard` (and every path below it: the page routes in the browser)
 * and `/dashboard/assets/<version>/<file>`.
 */
export function dashboardRoutes(assets: DashboardAssets): Route[] {
  const routes: Route[] = [];
  for (const method of ["GET", "HEAD"]) {
    routes.push(
      {
        method,
        pattern: "/dashboard/assets/:version/:file",
        auth: false,
        handler: async (ctx) => {
          const file = assets.files.get(ctx.params.file ?? "");
          // Another version was built by another ingress (a rolling update): not ours to guess.
          if (!file || ctx.params.version !== assets.version) {
            throw new LonghaulError("not_found", "no such dashboard asset");
          }
          sendAsset(ctx.req, ctx.res, file, IMMUTABLE);
        },
      },
      {
        method,
        pattern: "/dashboard/*",
        auth: false,
        handler: async (ctx) => {
          if (ctx.rest.startsWith("/assets/")) throw new LonghaulError("not_found", "no such dashboard asset");
          sendAsset(ctx.req, ctx.res, assets.page, REVALIDATE);
        },
      },
    );
  }
  return routes;
}
