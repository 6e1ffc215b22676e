import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

/** Paths of the PEM files of the mesh's gRPC TLS (`LONGHAUL_GRPC_TLS_CERT`, `_KEY`, `_CA`). */
export interface GrpcTlsFiles {
  /** This service's certificate (chain), served by its gRPC server and presented by its clients. */
  cert: string;
  /** The private key of `cert`. */
  key: string;
  /**
   * CA bundle: clients verify servers against it, and servers require client
   * certificates signed by it (mutual TLS). Absent: clients verify against
   * Node's default roots and servers ask for no client certificate.
   */
  ca?: string | undefined;
}

/** The contents of {@link GrpcTlsFiles}, checked. */
export interface GrpcTlsPem {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | null;
  /** When the leaf certificate of `cert` expires. */
  notAfter: Date;
}

/** A TLS file that is missing, unreadable or not what its variable says; the message names the variable. */
export class GrpcTlsError extends Error {
  override readonly name = "GrpcTlsError";
}

/** The settings the TLS files come from (the common config's). */
export interface GrpcTlsSettings {
  LONGHAUL_GRPC_TLS_CERT?: string | undefined;
  LONGHAUL_GRPC_TLS_KEY?: string | undefined;
  LONGHAUL_GRPC_TLS_CA?: string | undefined;
}

/**
 * Which TLS files the settings name; undefined when none is set (plaintext).
 * A certificate needs its key and the reverse; a CA alone is refused, since
 * every gRPC server of the mesh needs a certificate to serve TLS.
 */
export function grpcTlsFiles(settings: GrpcTlsSettings): GrpcTlsFiles | undefined {
  const { LONGHAUL_GRPC_TLS_CERT: cert, LONGHAUL_GRPC_TLS_KEY: key, LONGHAUL_GRPC_TLS_CA: ca } = settings;
  if (!cert && !key && !ca) return undefined;
  if (!cert || !key) {
    const missing = !cert ? "LONGHAUL_GRPC_TLS_CERT" : "LONGHAUL_GRPC_TLS_KEY";
    const given = [cert && "LONGHAUL_GRPC_TLS_CERT", key && "LONGHAUL_GRPC_TLS_KEY", ca && "LONGHAUL_GRPC_TLS_CA"].filter(Boolean).join(" and ");
    throw new GrpcTlsError(`${missing}: must be set when ${given} is (gRPC TLS needs a certificate and its key)`);
  }
  return { cert, key, ca };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function parseCertificates(variable: string, path: string, pem: Buffer): X509Certificate[] {
  const blocks = pem.toString("latin1").match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new GrpcTlsError(`${variable}: ${path} holds no PEM certificate`);
  return blocks.map((block) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new GrpcTlsError(`${variable}: ${path} holds a certificate that cannot be parsed (${(err as Error).message})`);
    }
  });
}

/**
 * Checks what was read: certificates parse, the key is the certificate's,
 * the certificate is valid now, and with a CA, the CA signed it (or a
 * certificate of its chain): a service whose every handshake would fail does
 * not start.
 */
function checkPem(files: GrpcTlsFiles, raw: { cert: Buffer; key: Buffer; ca: Buffer | null }, now: Date): GrpcTlsPem {
  const chain = parseCertificates("LONGHAUL_GRPC_TLS_CERT", files.cert, raw.cert);
  const leaf = chain[0];
  let key: KeyObject;
  try {
    key = createPrivateKey(raw.key);
  } catch (err) {
    throw new GrpcTlsError(`LONGHAUL_GRPC_TLS_KEY: ${files.key} is not a PEM private key (${(err as Error).message})`);
  }
  if (!leaf!.checkPrivateKey(key)) {
    throw new GrpcTlsError(`LONGHAUL_GRPC_TLS_KEY: ${files.key} is not the key of the certificate in ${files.cert}`);
  }
  const notAfter = new Date(leaf!.validTo);
  if (notAfter.getTime() <= now.getTime()) {
    throw new GrpcTlsError(`LONGHAUL_GRPC_TLS_CERT: the certificate in ${files.cert} expired on ${notAfter.toISOString()}`);
  }
  const notBefore = new Date(leaf!.validFrom);
  if (notBefore.getTime() > now.getTime()) {
    throw new GrpcTlsError(`LONGHAUL_GRPC_TLS_CERT: the certificate in ${files.cert} is not valid before ${notBefore.toISOString()}`);
  }
  if (raw.ca && files.ca) {
    const authorities = parseCertificates("LONGHAUL_GRPC_TLS_CA", files.ca, raw.ca);
    const signed = chain.some((c) => authorities.some((a) => a.fingerprint256 === c.fingerprint256 || (c.checkIssued(a) && c.verify(a.publicKey))));
    if (!signed) {
      throw new GrpcTlsError(`LONGHAUL_GRPC_TLS_CERT: the certificate in ${files.cert} is not signed by a CA of ${files.ca} (LONGHAUL_GRPC_TLS_CA)`);
    }
  }
  return { cert: raw.cert, key: raw.key, ca: raw.ca, notAfter };
}

function readError(variable: string, path: string, err: unknown): GrpcTlsError {
  const e = err as NodeJS.ErrnoException;
  return new GrpcTlsError(`${variable}: cannot read ${path} (${e.code ?? e.message})`);
}

function readOne(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw readError(variable, path, err);
  }
}

async function readOneAsync(variable: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw readError(variable, path, err);
  }
}

/** Reads and checks the TLS files at start; throws a {@link GrpcTlsError} naming the variable at fault. */
export function readGrpcTlsFiles(files: GrpcTlsFiles, now = new Date()): GrpcTlsPem {
  return checkPem(
    files,
    {
      cert: readOne("LONGHAUL_GRPC_TLS_CERT", files.cert),
      key: readOne("LONGHAUL_GRPC_TLS_KEY", files.key),
      ca: files.ca ? readOne("LONGHAUL_GRPC_TLS_CA", files.ca) : null,
    },
    now,
  );
}

/** {@link readGrpcTlsFiles} without blocking the event loop, for reloads while serving. */
export async function readGrpcTlsFilesAsync(files: GrpcTlsFiles, now = new Date()): Promise<GrpcTlsPem> {
  const [cert, key, ca] = await Promise.all([
    readOneAsync("LONGHAUL_GRPC_TLS_CERT", files.cert),
    readOneAsync("LONGHAUL_GRPC_TLS_KEY", files.key),
    files.ca ? readOneAsync("LONGHAUL_GRPC_TLS_CA", files.ca) : Promise.resolve(null),
  ]);
  return checkPem(files, { cert, key, ca }, now);
}
