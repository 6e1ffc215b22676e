import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants as zlib, gzipSync } from "node:zlib";
import { dashboardPage } from "../../dashboard/page.js";
import { DASHBOARD_CSS } from "../../dashboard/styles.js";

/**
 * The dashboard's files, read once at start and held in memory with their
 * compressed forms and ETags: serving them is a lookup, and they load fast.
 * The browser modules are compiled by `tsc -b` from
 * src/dashboard/client into dist/dashboard/client; the stylesheet and the
 * HTML shell are TypeScript modules (src/dashboard/), so the build needs no
 * copy step. The chart library, uPlot, is served from its own ES module
 * build in node_modules (`uplot.js`, `uplot.css`): no bundler, no CDN.
 */

/** One file, ready to send. */
export interface Asset {
  contentType: string;
  body: Buffer;
  gzip: Buffer;
  br: Buffer;
  /** Strong ETag of the uncompressed body (quoted). */
  etag: string;
}

export interface DashboardAssets {
  /** Hash of every asset: part of the asset URLs, so they can be cached for good. */
  version: string;
  /** The HTML shell. */
  page: Asset;
  /** Files under `/dashboard/assets/<version>/`, by name. */
  files: ReadonlyMap<string, Asset>;
}

/** uPlot's ES module build and stylesheet, as installed (a dependency of the ingress). */
export const UPLOT_FILES = {
  js: createRequire(import.meta.url).resolve("uplot/dist/uPlot.esm.js"),
  css: createRequire(import.meta.url).resolve("uplot/dist/uPlot.min.css"),
};

/** Where `tsc -b` puts the compiled browser modules: `<package>/dist/dashboard/client`. */
export const DEFAULT_CLIENT_DIR = fileURLToPath(new URL("../../../dist/dashboard/client/", import.meta.url));

/**
 * A file held in memory with its strong ETag and its compressed forms, each
 * made the first time a browser asks for it and kept: compressing every asset
 * at start (brotli at quality 11) cost each ingress start seconds of CPU,
 * dashboard or not (the cost-per-run profile).
 */
export function createAsset(contentType: string, body: Buffer): Asset {
  let gzip: Buffer | undefined;
  let br: Buffer | undefined;
  return {
    contentType,
    body,
    get gzip() {
      return (gzip ??= gzipSync(body, { level: 9 }));
    },
    get br() {
      return (br ??= brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: body.length } }));
    },
    etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
  };
}

function isTypeOnly(js: string): boolean {
  return js.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "").trim() === "export {};";
}

/**
 * Reads the compiled modules from `clientDir` and builds the page. Throws
 * when the modules are missing (the ingress was not built): a dashboard that
 * serves a blank page would fail silently.
 */
export async function loadDashboardAssets(clientDir: string = DEFAULT_CLIENT_DIR): Promise<DashboardAssets> {
  const all = (await readdir(clientDir)).filter((n) => n.endsWith(".js")).sort();
  if (!all.includes("main.js")) throw new Error(`dashboard: ${clientDir} has no main.js; build the ingress (npm run build)`);
  const files = new Map<string, Asset>();
  const names: string[] = [];
  for (const name of all) {
    const body = await readFile(`${clientDir}/${name}`);
    // Modules of types only compile to `export {};`: nothing imports them at run time.
    if (isTypeOnly(body.toString("utf8"))) continue;
    names.push(name);
    files.set(name, createAsset("text/javascript; charset=utf-8", body));
  }
  // The client imports "./uplot.js" (its types come from client/uplot.d.ts).
  files.set("uplot.js", createAsset("text/javascript; charset=utf-8", await readFile(UPLOT_FILES.js)));
  names.push("uplot.js");
  files.set("uplot.css", createAsset("text/css; charset=utf-8", await readFile(UPLOT_FILES.css)));
  files.set("app.css", createAsset("text/css; charset=utf-8", Buffer.from(DASHBOARD_CSS)));
  const version = createHash("sha256")
    .update([...files.entries()].map(([n, a]) => `${n}:${a.etag}`).join("\n"))
    .digest("hex")
    .slice(0, 12);
  const page = createAsset("text/html; charset=utf-8", Buffer.from(dashboardPage(`/dashboard/assets/${version}`, names)));
  return { version, page, files };
}
