import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { LonghaulError } from "@longhaul/shared/errors";
import { createAsset, type Asset } from "./dashboard-assets.js";
import { sendAsset } from "./dashboard-routes.js";
import { adminApi } from "./openapi/admin-paths.js";
import { compatApi } from "./openapi/compat-paths.js";
import { openApiDocument, type OpenApiPart } from "./openapi/document.js";
import type { Route } from "./router.js";

const require = createRequire(import.meta.url);

/** The ingress package's version: the document's `info.version`. */
function packageVersion(): string {
  return (require("../../../package.json") as { version: string }).version;
}

/** The parts of the document beyond the core control API. */
const PARTS: OpenApiPart[] = [adminApi, compatApi];

/** The document the gateway serves (and `@longhaul/client` is generated from). */
export function servedOpenApiDocument(): Record<string, unknown> {
  return openApiDocument(packageVersion(), PARTS);
}

/**
 * `GET /v1/openapi.json`: the document, built once at start and served
 * without a key (it holds no data), revalidated by ETag, readable from any
 * origin so that tools (code generators, API clients) can load it.
 */
export function openApiRoutes(): Route[] {
  const doc = createAsset("application/json; charset=utf-8", Buffer.from(JSON.stringify(servedOpenApiDocument())));
  return ["GET", "HEAD"].map((method) => ({
    method,
    pattern: "/v1/openapi.json",
    auth: false,
    handler: async (ctx) => {
      sendAsset(ctx.req, ctx.res, doc, "no-cache", { "access-control-allow-origin": "*", "x-content-type-options": "nosniff" });
    },
  }));
}

/** The API reference page's files, held in memory like the dashboard's. */
export interface DocsAssets {
  version: string;
  page: Asset;
  files: ReadonlyMap<string, Asset>;
}

/**
 * Swagger UI, served from its own prebuilt bundle in node_modules
 * (`swagger-ui-dist`): the page works with no network beyond the gateway.
 * The start script is a file of ours, not inline, so the page's CSP allows
 * scripts from 'self' only; Swagger UI sets inline style attributes, hence
 * `style-src 'unsafe-inline'` (styles cannot run code).
 */
const DOCS_INIT = `window.ui = SwaggerUIBundle({
  url: "/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false,
  persistAuthorization: false,
});
`;

const DOCS_SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; " +
    "font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

function docsPage(base: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Longhaul HTTP API</title>
<link rel="stylesheet" href="${base}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="${base}/swagger-ui-bundle.js"></script>
<script src="${base}/docs.js"></script>
</body>
</html>
`;
}

/** Reads Swagger UI's bundle and stylesheet once (a dependency of the ingress). */
export async function loadDocsAssets(): Promise<DocsAssets> {
  const files = new Map<string, Asset>([
    ["swagger-ui-bundle.js", createAsset("text/javascript; charset=utf-8", await readFile(require.resolve("swagger-ui-dist/swagger-ui-bundle.js")))],
    ["swagger-ui.css", createAsset("text/css; charset=utf-8", await readFile(require.resolve("swagger-ui-dist/swagger-ui.css")))],
    ["docs.js", createAsset("text/javascript; charset=utf-8", Buffer.from(DOCS_INIT))],
  ]);
  const version = createHash("sha256")
    .update([...files.entries()].map(([n, a]) => `${n}:${a.etag}`).join("\n"))
    .digest("hex")
    .slice(0, 12);
  return { version, page: createAsset("text/html; charset=utf-8", Buffer.from(docsPage(`/docs/assets/${version}`))), files };
}

/** `/docs` (the reference page) and `/docs/assets/<version>/<file>`, without a key. */
export function docsRoutes(assets: DocsAssets): Route[] {
  return ["GET", "HEAD"].flatMap((method): Route[] => [
    {
      method,
      pattern: "/docs",
      auth: false,
      handler: async (ctx) => sendAsset(ctx.req, ctx.res, assets.page, "no-cache", DOCS_SECURITY_HEADERS),
    },
    {
      method,
      pattern: "/docs/assets/:version/:file",
      auth: false,
      handler: async (ctx) => {
        const file = assets.files.get(ctx.params.file ?? "");
        if (!file || ctx.params.version !== assets.version) throw new LonghaulError("not_found", "no such docs asset");
        sendAsset(ctx.req, ctx.res, file, "public, max-age=31536000, immutable", DOCS_SECURITY_HEADERS);
      },
    },
  ]);
}
