// A whole Longhaul mesh (the four services as real processes) for an
// end-to-end test file, on its own database and NATS prefix so that files run
// in parallel against the Postgres and NATS that `npm test` provides.
import { rmSync } from "node:fs";
import pg from "pg";
import { expect } from "vitest";
import { createGrpcTlsFromFiles, type GrpcTls } from "@longhaul/shared/grpc";
import { startMesh, type Mesh, type MeshOptions } from "../../scripts/lib/mesh.mjs";
import { createTestDatabase, createTestNats } from "./isolation.js";
import { checkResponsesAgainstOpenApi } from "./openapi-conformance.js";
import { gateway, type Peer } from "./peers.js";
import { createTestPki, type TestPki } from "./pki.js";

export type { Mesh, MeshOptions, ServiceName } from "../../scripts/lib/mesh.mjs";

export interface TestMesh extends Mesh {
  /** The test file's own database (already wired into every service). */
  database: { url: string; name: string };
  /** The test file's own stream prefix (LONGHAUL_NATS_PREFIX). */
  natsPrefix: string;
  /** With `grpcTls`: the certificates the services use (removed by cleanup). */
  pki?: TestPki;
  /**
   * With `grpcTls`: credentials for the test's own gRPC clients of the mesh
   * (pass as createClient's `tls`): they trust the test CA and present the
   * mesh's certificate.
   */
  clientTls?: GrpcTls;
  /**
   * Stops the mesh, then drops the database, deletes the streams and removes
   * the temp log dir (kept when LONGHAUL_KEEP_LOGS is set or `logDir` was given).
   */
  cleanup(): Promise<void>;
}

/** startMesh's options, less the URLs and prefix, plus the overrides of a test that owns its dependencies. */
export interface TestMeshOptions extends Omit<MeshOptions, "databaseUrl" | "natsUrl" | "natsPrefix"> {
  /**
   * A NATS server of the test's own (one it stops and starts, say) instead of
   * NATS_URL; the stream prefix is still the file's own.
   */
  natsUrl?: string;
  /** Rewrites the URL of the file's database the services get (e.g. to go through a TCP proxy). */
  databaseUrl?: (url: string) => string;
  /**
   * gRPC between the services over TLS, with certificates openssl makes for
   * this mesh: `"tls"` sets LONGHAUL_GRPC_TLS_CERT and _KEY (clients trust the
   * test CA through NODE_EXTRA_CA_CERTS, as an operator's private CA would be
   * added); `"mtls"` also sets LONGHAUL_GRPC_TLS_CA, so servers require client
   * certificates. @default plaintext
   */
  grpcTls?: "tls" | "mtls";
}

/**
 * Starts a mesh for one test file. Options are startMesh's, less the URLs and
 * prefix, which come from the isolation helpers (or the overrides). Typical use:
 *
 * ```ts
 * let mesh: TestMesh;
 * beforeAll(async () => { mesh = await startTestMesh(); });
 * afterAll(async () => { await mesh?.cleanup(); });
 * ```
 */
export async function startTestMesh(options: TestMeshOptions = {}): Promise<TestMesh> {
  const { natsUrl, databaseUrl, grpcTls, ...meshOptions } = options;
  const pki = grpcTls ? createTestPki() : undefined;
  const tlsEnv: Record<string, string> = pki
    ? {
        LONGHAUL_GRPC_TLS_CERT: pki.cert,
        LONGHAUL_GRPC_TLS_KEY: pki.key,
        ...(grpcTls === "mtls" ? { LONGHAUL_GRPC_TLS_CA: pki.ca } : { NODE_EXTRA_CA_CERTS: pki.ca }),
      }
    : {};
  const clientTls = pki ? createGrpcTlsFromFiles({ cert: pki.cert, key: pki.key, ca: pki.ca }, { reloadMs: 0 }) : undefined;
  const dropPki = () => {
    clientTls?.close();
    pki?.cleanup();
  };
  const database = await createTestDatabase();
  const nats = await createTestNats();
  let mesh: Mesh;
  try {
    // CI runs two test files at once on two cores; a service may take a while to start there.
    mesh = await startMesh({
      readyTimeoutMs: 60_000,
      ...meshOptions,
      env: { ...tlsEnv, ...meshOptions.env },
      databaseUrl: databaseUrl ? databaseUrl(database.url) : database.url,
      natsUrl: natsUrl ?? nats.url,
      natsPrefix: nats.prefix,
    });
  } catch (err) {
    await nats.cleanup().catch(() => {});
    await database.drop().catch(() => {});
    dropPki();
    throw err;
  }
  // Every answer the test gets from this ingress through fetch is checked
  // against the OpenAPI document it serves (tests/helpers/openapi-conformance.ts).
  let stopChecking = () => {};
  if (mesh.ingressUrl) {
    try {
      stopChecking = await checkResponsesAgainstOpenApi(mesh.ingressUrl);
    } catch (err) {
      await mesh.stop();
      await nats.cleanup().catch(() => {});
      await database.drop().catch(() => {});
      dropPki();
      throw err;
    }
  }
  let cleaned: Promise<void> | undefined;
  // Extends the handle in place so that its live getter (processes) stays live.
  return Object.assign(mesh, {
    database: { url: database.url, name: database.name },
    natsPrefix: nats.prefix,
    ...(pki ? { pki } : {}),
    ...(clientTls ? { clientTls } : {}),
    cleanup: () =>
      (cleaned ??= (async () => {
        stopChecking();
        await mesh.stop();
        // A NATS of the test's own is the test's to clean up.
        if (!natsUrl) await nats.cleanup();
        await database.drop();
        dropPki();
        // A temp log dir of our own goes too, unless asked to keep it for a post-mortem.
        if (!options.logDir && !process.env.LONGHAUL_KEEP_LOGS) rmSync(mesh.logDir, { recursive: true, force: true });
      })()),
  });
}

/**
 * After submits made under load (a copy stopped or killed meanwhile), checks
 * that each was accepted once: every answer a 202 with its own run id; the
 * database holds exactly those runs among those created since `since` (none
 * lost, none made twice by a try sent again); each run succeeded and reached
 * `app` exactly once (its `X-Longhaul-Run-Id`).
 */
export async function expectEachAcceptedOnce(
  mesh: TestMesh,
  app: Peer,
  since: Date,
  results: ReadonlyArray<{ status: number; runId?: string | undefined }>,
): Promise<void> {
  const refused = results.filter((r) => r.status !== 202);
  expect(refused, JSON.stringify(refused.slice(0, 3))).toEqual([]);
  const ids = new Set(results.map((r) => r.runId!));
  expect(ids.size).toBe(results.length);
  const db = new pg.Client({ connectionString: mesh.database.url });
  await db.connect();
  try {
    const { rows } = await db.query<{ id: string }>("select id from runs where created_at >= $1", [since]);
    expect(rows.length).toBe(ids.size);
    expect(new Set(rows.map((r) => r.id))).toEqual(ids);
  } finally {
    await db.end();
  }
  const api = gateway(mesh.ingressUrl, mesh.apiKey);
  for (const id of ids) expect((await api.finished(id)).status, id).toBe("succeeded");
  const calls = new Map<string, number>();
  for (const r of app.received) {
    const id = r.headers["x-longhaul-run-id"];
    if (typeof id === "string" && ids.has(id)) calls.set(id, (calls.get(id) ?? 0) + 1);
  }
  const notOnce = [...ids].filter((id) => calls.get(id) !== 1).map((id) => `${id}: ${calls.get(id) ?? 0}`);
  expect(notOnce, "app calls per run").toEqual([]);
}

/** A gauge or counter of a service copy's /metrics (`name`, whatever its labels), 0 when absent. */
export async function meshGauge(mesh: TestMesh, service: keyof TestMesh["metricsUrls"], index: number, name: string): Promise<number> {
  const text = await (await fetch(mesh.metricsUrls[service][index]!)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}
