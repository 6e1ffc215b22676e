import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { createRegistry } from "@longhaul/shared/metrics";
import { resultUrlKey } from "@longhaul/shared/result-url";
import { createAuthenticator } from "../../core/auth.js";
import { TOKEN, startFakeMesh, type FakeMesh } from "../../../test/fake-mesh.js";
import { meshPorts } from "../../../test/gateway-harness.js";
import { loadDashboardAssets, type DashboardAssets } from "./dashboard-assets.js";
import { dashboardRoutes } from "./dashboard-routes.js";
import { createHttpGateway, type HttpGateway } from "./server.js";

// Serving the dashboard's files: the page for every /dashboard path, the
// versioned assets cached for good, ETags, compression, the CSP. The modules
// come from a temp folder here (the build's output is tested end to end in
// tests/dashboard.test.ts).

let dir: string;
let assets: DashboardAssets;
let mesh: FakeMesh;
let gateway: HttpGateway;
let close: () => void;
let base: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dashboard-"));
  await writeFile(join(dir, "main.js"), 'import { x } from "./util.js";\nconsole.log(x);\n');
  await writeFile(join(dir, "util.js"), "export const x = 1;\n");
  await writeFile(join(dir, "types.js"), "/** types only */\nexport {};\n");
  await writeFile(join(dir, "main.d.ts"), "export {};\n");
  assets = await loadDashboardAssets(dir);
  mesh = await startFakeMesh();
  const clients = meshPorts(mesh.schedulerAddr, mesh.invokerAddr, mesh.notifierAddr);
  close = clients.close;
  gateway = createHttpGateway({
    log: createLogger("ingress-test", "silent"),
    registry: createRegistry("ingress-test"),
    ports: clients.ports,
    authenticator: createAuthenticator(clients.ports.keys, { cacheSeconds: 5 }),
    limits: { maxBodyBytes: 1024, sseHeartbeatSeconds: 1, sseMaxSeconds: 30, feedMaxWatched: 5 },
    resultUrlKey: resultUrlKey(TOKEN),
    extraRoutes: () => dashboardRoutes(assets),
  });
  base = `http://127.0.0.1:${await gateway.listen("127.0.0.1", 0)}`;
});

afterAll(async () => {
  await gateway?.close(100);
  close?.();
  await mesh?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A raw GET (no automatic decompression), so encodings can be checked. */
async function get(path: string, headers: Record<string, string> = {}) {
  const { request } = await import("node:http");
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
    request(`${base}${path}`, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    })
      .on("error", reject)
      .end();
  });
}

describe("dashboard files", () => {
  it("serves the page for every /dashboard path, revalidated by ETag, with a strict CSP", async () => {
    for (const path of ["/dashboard", "/dashboard/", "/dashboard/runs", `/dashboard/runs/${crypto.randomUUID()}`, "/dashboard/apps"]) {
      const res = await get(path);
      expect(res.status, path).toBe(200);
      expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    }
    const page = await get("/dashboard");
    expect(page.headers["cache-control"]).toBe("no-cache");
    expect(page.headers["content-security-policy"]).toMatch(/default-src 'none'; script-src 'self'; style-src 'self'/);
    expect(page.headers["x-content-type-options"]).toBe("nosniff");
    const html = page.body.toString();
    const prefix = `/dashboard/assets/${assets.version}`;
    expect(html).toContain(`<script type="module" src="${prefix}/main.js">`);
    expect(html).toContain(`<link rel="modulepreload" href="${prefix}/util.js">`);
    expect(html).toContain(`<link rel="stylesheet" href="${prefix}/app.css">`);
    // Type-only modules are not served (nothing imports them at run time), nor are .d.ts files.
    expect(html).not.toContain("types.js");
    expect([...assets.files.keys()].sort()).toEqual(["app.css", "main.js", "uplot.css", "uplot.js", "util.js"]);
    // The chart library: uPlot's own ES module build and stylesheet, from node_modules.
    expect(html).toContain(`<link rel="modulepreload" href="${prefix}/uplot.js">`);
    expect(html).toContain(`<link rel="stylesheet" href="${prefix}/uplot.css">`);
    const uplot = await get(`${prefix}/uplot.js`);
    expect(uplot.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(uplot.body.toString()).toContain("export { uPlot as default }");

    const again = await get("/dashboard/runs", { "if-none-match": String(page.headers.etag) });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });

  it("serves versioned assets cached for good, compressed as the client accepts", async () => {
    const prefix = `/dashboard/assets/${assets.version}`;
    const plain = await get(`${prefix}/util.js`);
    expect(plain.status).toBe(200);
    expect(plain.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(plain.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(plain.body.toString()).toBe("export const x = 1;\n");
    const br = await get(`${prefix}/app.css`, { "accept-encoding": "gzip, deflate, br" });
    expect(br.headers["content-encoding"]).toBe("br");
    expect(br.headers.vary).toBe("accept-encoding");
    expect(brotliDecompressSync(br.body).toString()).toContain(".badge-running");
    const gz = await get(`${prefix}/main.js`, { "accept-encoding": "gzip" });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gunzipSync(gz.body).toString()).toContain('from "./util.js"');
    expect((await get(`${prefix}/main.js`, { "if-none-match": `W/${String(plain.headers.etag)}, ${String(gz.headers.etag)}` })).status).toBe(304);
  });

  it("answers 404 for another version, an unknown file and any other path under assets", async () => {
    expect((await get("/dashboard/assets/000000000000/main.js")).status).toBe(404);
    expect((await get(`/dashboard/assets/${assets.version}/nope.js`)).status).toBe(404);
    expect((await get(`/dashboard/assets/${assets.version}/main.d.ts`)).status).toBe(404);
    expect((await get(`/dashboard/assets/${assets.version}/a/b.js`)).status).toBe(404);
  });

  it("refuses to start without the compiled modules", async () => {
    const empty = await mkdtemp(join(tmpdir(), "dashboard-empty-"));
    await expect(loadDashboardAssets(empty)).rejects.toThrow(/no main.js/);
    await rm(empty, { recursive: true, force: true });
  });
});
