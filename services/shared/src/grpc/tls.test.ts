// gRPC TLS and mutual TLS of the mesh against real grpc-js servers on
// loopback, with certificates openssl makes for this file (tests/helpers/pki.ts).
import { X509Certificate } from "node:crypto";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import tls from "node:tls";
import { credentials, type ChannelCredentials } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createTestPki, type TestPki } from "../../../../tests/helpers/pki.js";
import { commonEnvSchema, parseEnv } from "../config.js";
import { LonghaulError } from "../errors.js";
import { createLogger } from "../logger.js";
import { notifierPb } from "../proto/index.js";
import { callUnary, createClient, internalMetadata } from "./client.js";
import { createGrpcServer, unary } from "./server.js";
import { createGrpcTls, createGrpcTlsFromFiles, type GrpcTls } from "./tls.js";
import { readGrpcTlsFiles, type GrpcTlsFiles } from "./tls-files.js";

const TOKEN = "t".repeat(24);
const log = createLogger("test", "silent");

let pki: TestPki;
beforeAll(() => {
  pki = createTestPki();
});
afterAll(() => pki?.cleanup());

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tlsOf(files: GrpcTlsFiles, reloadMs = 0): GrpcTls {
  const t = createGrpcTlsFromFiles(files, { log, reloadMs });
  cleanups.push(() => t.close());
  return t;
}

/** A server of NotifierInternalService whose GetWebhookSecret answers "ok"; its port. */
async function serve(serverTls: GrpcTls | undefined): Promise<number> {
  const server = createGrpcServer({ log, address: "127.0.0.1:0", internalToken: TOKEN, tls: serverTls });
  server.add(
    notifierPb.NotifierInternalServiceService,
    {
      getWebhookSecret: unary(log, "GetWebhookSecret", async () => ({ secret: "ok", previousSecret: "" })),
      rotateWebhookSecret: unary(log, "RotateWebhookSecret", async () => ({ secret: "", previousSecret: "" })),
      listDeliveries: unary(log, "ListDeliveries", async () => ({ delivery: [] })),
      redeliver: unary(log, "Redeliver", async () => ({})),
    },
    { internal: true },
  );
  const port = await server.start();
  server.setServing(true);
  cleanups.push(() => server.stop(0));
  return port;
}

/** One call from a client with `clientTls` (a GrpcTls, raw grpc-js credentials, or none: plaintext). */
async function ask(port: number, clientTls?: GrpcTls | ChannelCredentials): Promise<string> {
  const address = `127.0.0.1:${port}`;
  const c =
    clientTls === undefined || "mutual" in clientTls
      ? createClient(notifierPb.NotifierInternalServiceClient, address, { tls: clientTls })
      : new notifierPb.NotifierInternalServiceClient(address, clientTls);
  try {
    const res = await callUnary(c.getWebhookSecret.bind(c), { project: "p" }, internalMetadata(TOKEN), 3_000);
    return res.secret;
  } finally {
    c.close();
  }
}

async function refused(call: Promise<string>): Promise<LonghaulError> {
  const err = await call.then(
    (secret) => new Error(`answered ${secret}`),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LonghaulError);
  expect((err as LonghaulError).code).toBe("unavailable");
  return err as LonghaulError;
}

/** The serial number of the certificate the server at `port` presents. */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ALPNProtocols: ["h2"], rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.destroy();
    });
    socket.on("error", reject);
  });
}

const serialOf = (file: string) => new X509Certificate(readFileSync(file)).serialNumber;

describe("gRPC TLS", () => {
  it("serves TLS: a client that trusts the CA is answered, with or without a certificate of its own", async () => {
    const port = await serve(tlsOf({ cert: pki.cert, key: pki.key }));
    expect(await ask(port, tlsOf({ cert: pki.cert, key: pki.key, ca: pki.ca }))).toBe("ok");
    // Without a CA the server asks for no client certificate.
    expect(await ask(port, credentials.createSsl(readFileSync(pki.ca)))).toBe("ok");
  });

  it("a client verifies the server: against Node's default roots a private CA's certificate is refused", async () => {
    const port = await serve(tlsOf({ cert: pki.cert, key: pki.key }));
    const err = await refused(ask(port, tlsOf({ cert: pki.cert, key: pki.key })));
    expect(err.cause ?? err.message).toBeTruthy();
  });

  it("a plaintext client of a TLS server is refused", async () => {
    const port = await serve(tlsOf({ cert: pki.cert, key: pki.key }));
    await refused(ask(port));
  });

  it("a TLS client of a plaintext server is refused (no silent fallback)", async () => {
    const port = await serve(undefined);
    expect(await ask(port)).toBe("ok");
    await refused(ask(port, tlsOf({ cert: pki.cert, key: pki.key, ca: pki.ca })));
  });
});

describe("gRPC mutual TLS (a CA set)", () => {
  it("answers a client with a certificate of the CA; refuses one without a certificate and one of another CA", async () => {
    const server = tlsOf({ cert: pki.cert, key: pki.key, ca: pki.ca });
    expect(server.mutual).toBe(true);
    const port = await serve(server);
    expect(await ask(port, tlsOf({ cert: pki.cert, key: pki.key, ca: pki.ca }))).toBe("ok");
    // Trusts the server, presents nothing.
    await refused(ask(port, credentials.createSsl(readFileSync(pki.ca))));
    // Trusts the server, presents a certificate of another CA.
    await refused(ask(port, credentials.createSsl(readFileSync(pki.ca), readFileSync(pki.rogue.key), readFileSync(pki.rogue.cert))));
    await refused(ask(port));
  });
});

describe("gRPC TLS files renewed while serving", () => {
  it("serves a renewed certificate without a restart, and keeps it when the files turn bad", async () => {
    const live = { cert: path.join(pki.dir, "live.crt"), key: path.join(pki.dir, "live.key"), ca: pki.ca };
    copyFileSync(pki.cert, live.cert);
    copyFileSync(pki.key, live.key);
    const port = await serve(tlsOf(live, 100));
    const client = tlsOf({ cert: pki.cert, key: pki.key, ca: pki.ca });
    const first = await servedSerial(port);
    expect(first).toBe(serialOf(pki.cert));

    const renewed = pki.issue("renewed");
    copyFileSync(renewed.key, live.key);
    copyFileSync(renewed.cert, live.cert);
    const want = serialOf(renewed.cert);
    const deadline = Date.now() + 5_000;
    while ((await servedSerial(port)) !== want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await servedSerial(port)).toBe(want);
    expect(await ask(port, client)).toBe("ok");

    // A half-written renewal: the previous pair stays in use.
    writeFileSync(live.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n");
    await new Promise((r) => setTimeout(r, 400));
    expect(await servedSerial(port)).toBe(want);
    expect(await ask(port, client)).toBe("ok");
  });
});

describe("gRPC TLS settings", () => {
  const base = { LONGHAUL_INTERNAL_TOKEN: TOKEN };
  const parse = (env: Record<string, string>) => parseEnv(commonEnvSchema, { ...base, ...env });
  const message = (env: Record<string, string>) => {
    try {
      parse(env);
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error("parsed");
  };

  it("unset or empty: plaintext", () => {
    expect(createGrpcTls(parse({}))).toBeUndefined();
    expect(createGrpcTls(parse({ LONGHAUL_GRPC_TLS_CERT: "", LONGHAUL_GRPC_TLS_KEY: "", LONGHAUL_GRPC_TLS_CA: "" }))).toBeUndefined();
  });

  it("a certificate and its key: TLS; with a CA: mutual", () => {
    const one = createGrpcTls(parse({ LONGHAUL_GRPC_TLS_CERT: pki.cert, LONGHAUL_GRPC_TLS_KEY: pki.key }));
    const two = createGrpcTls(parse({ LONGHAUL_GRPC_TLS_CERT: pki.cert, LONGHAUL_GRPC_TLS_KEY: pki.key, LONGHAUL_GRPC_TLS_CA: pki.ca }));
    cleanups.push(() => one?.close(), () => two?.close());
    expect(one?.mutual).toBe(false);
    expect(two?.mutual).toBe(true);
  });

  it("half a pair, a CA alone, a missing file, a file that is not PEM, a key of another certificate: one line naming the variable", () => {
    const bad = path.join(pki.dir, "bad.pem");
    writeFileSync(bad, "hello\n");
    expect(message({ LONGHAUL_GRPC_TLS_CERT: pki.cert })).toContain(
      "LONGHAUL_GRPC_TLS_KEY: must be set when LONGHAUL_GRPC_TLS_CERT is (gRPC TLS needs a certificate and its key)",
    );
    expect(message({ LONGHAUL_GRPC_TLS_KEY: pki.key })).toContain("LONGHAUL_GRPC_TLS_CERT: must be set when LONGHAUL_GRPC_TLS_KEY is");
    expect(message({ LONGHAUL_GRPC_TLS_CA: pki.ca })).toContain("LONGHAUL_GRPC_TLS_CERT: must be set when LONGHAUL_GRPC_TLS_CA is");
    expect(message({ LONGHAUL_GRPC_TLS_CERT: "/nonexistent/mesh.crt", LONGHAUL_GRPC_TLS_KEY: pki.key })).toContain(
      "LONGHAUL_GRPC_TLS_CERT: cannot read /nonexistent/mesh.crt (ENOENT)",
    );
    expect(message({ LONGHAUL_GRPC_TLS_CERT: bad, LONGHAUL_GRPC_TLS_KEY: pki.key })).toContain(`LONGHAUL_GRPC_TLS_CERT: ${bad} holds no PEM certificate`);
    expect(message({ LONGHAUL_GRPC_TLS_CERT: pki.cert, LONGHAUL_GRPC_TLS_KEY: bad })).toContain(`LONGHAUL_GRPC_TLS_KEY: ${bad} is not a PEM private key`);
    expect(message({ LONGHAUL_GRPC_TLS_CERT: pki.cert, LONGHAUL_GRPC_TLS_KEY: pki.rogue.key })).toContain(
      `LONGHAUL_GRPC_TLS_KEY: ${pki.rogue.key} is not the key of the certificate in ${pki.cert}`,
    );
    expect(message({ LONGHAUL_GRPC_TLS_CERT: pki.cert, LONGHAUL_GRPC_TLS_KEY: pki.key, LONGHAUL_GRPC_TLS_CA: bad })).toContain(
      `LONGHAUL_GRPC_TLS_CA: ${bad} holds no PEM certificate`,
    );
    // Each message is one line under the "invalid configuration:" heading.
    expect(message({ LONGHAUL_GRPC_TLS_CERT: pki.cert }).split("\n")).toHaveLength(2);
  });

  it("an expired certificate, or one not valid yet, is refused at start", () => {
    const later = new Date(Date.now() + 3 * 86_400_000);
    expect(() => readGrpcTlsFiles({ cert: pki.cert, key: pki.key }, later)).toThrow(/LONGHAUL_GRPC_TLS_CERT: the certificate in .* expired on/);
    const earlier = new Date(Date.now() - 86_400_000);
    expect(() => readGrpcTlsFiles({ cert: pki.cert, key: pki.key }, earlier)).toThrow(/LONGHAUL_GRPC_TLS_CERT: the certificate in .* is not valid before/);
  });

  it("with a CA, a certificate that CA did not sign is refused at start (every mutual handshake would fail)", () => {
    expect(message({ LONGHAUL_GRPC_TLS_CERT: pki.rogue.cert, LONGHAUL_GRPC_TLS_KEY: pki.rogue.key, LONGHAUL_GRPC_TLS_CA: pki.ca })).toContain(
      `LONGHAUL_GRPC_TLS_CERT: the certificate in ${pki.rogue.cert} is not signed by a CA of ${pki.ca} (LONGHAUL_GRPC_TLS_CA)`,
    );
    // Its own CA, or a bundle holding it, is fine.
    const bundle = path.join(pki.dir, "bundle.crt");
    writeFileSync(bundle, `${readFileSync(pki.ca, "utf8")}${readFileSync(pki.rogue.ca, "utf8")}`);
    const ok = createGrpcTls(parse({ LONGHAUL_GRPC_TLS_CERT: pki.rogue.cert, LONGHAUL_GRPC_TLS_KEY: pki.rogue.key, LONGHAUL_GRPC_TLS_CA: bundle }));
    cleanups.push(() => ok?.close());
    expect(ok?.mutual).toBe(true);
  });
});
