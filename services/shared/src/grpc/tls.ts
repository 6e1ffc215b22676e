import nodeTls from "node:tls";
import { experimental, type ChannelCredentials, type ServerCredentials } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { grpcTlsFiles, readGrpcTlsFiles, readGrpcTlsFilesAsync, type GrpcTlsFiles, type GrpcTlsPem, type GrpcTlsSettings } from "./tls-files.js";

type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

/**
 * The mesh's gRPC TLS: one set of credentials for the service's server and
 * every client it opens, fed from the PEM files, which are read again every
 * `reloadMs` so that a renewed certificate (a Kubernetes Secret updated by
 * cert-manager) is served and presented without a restart.
 */
export interface GrpcTls {
  /** True when a CA is set: servers require client certificates signed by it. */
  readonly mutual: boolean;
  /** Credentials of the gRPC server: TLS with the certificate; with a CA, client certificates required. */
  readonly server: ServerCredentials;
  /** Credentials of clients: verify the server against the CA (else Node's default roots), present the certificate. */
  readonly channel: ChannelCredentials;
  /** When the certificate in use expires. */
  notAfter(): Date;
  /** Stops reloading the files. */
  close(): void;
}

/** Options of {@link createGrpcTls}. */
export interface GrpcTlsOptions {
  /** Where reloads and failed reloads are logged. */
  log?: Logger;
  /** How often the files are read again; 0: only at start. @default 60_000 */
  reloadMs?: number;
  /**
   * Clients do not match the server's name against its certificate (the
   * chain is still verified against the CA). Only for a probe of a service's
   * own port over loopback, where the certificate names the Service, not
   * 127.0.0.1. @default false
   */
  skipHostnameCheck?: boolean;
}

/**
 * Node's default CA certificates (`tls.getCACertificates("default")`, Node ≥
 * 22.15: the bundled roots plus NODE_EXTRA_CA_CERTS). Looked up at call time,
 * so that importing this module on an older Node (a tool of the repo run with
 * the system's) does not fail; there only the bundled roots are known.
 */
function defaultRoots(): Buffer {
  const all = typeof nodeTls.getCACertificates === "function" ? nodeTls.getCACertificates("default") : nodeTls.rootCertificates;
  return Buffer.from(all.join("\n"));
}

/**
 * A grpc-js certificate provider (grpc-js `experimental.CertificateProvider`,
 * the hook its own FileWatcherCertificateProvider uses) that publishes only
 * files that passed the checks of {@link readGrpcTlsFiles}: a reload that
 * finds a half-written or mismatched pair keeps the last good one and logs
 * why, where grpc-js's own watcher would drop the credentials and refuse
 * every new connection.
 */
class CheckedPemProvider implements experimental.CertificateProvider {
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private timer: NodeJS.Timeout | undefined;
  private reloading = false;

  constructor(
    private readonly files: GrpcTlsFiles,
    public current: GrpcTlsPem,
    private readonly options: GrpcTlsOptions,
  ) {
    const reloadMs = options.reloadMs ?? 60_000;
    if (reloadMs > 0) {
      this.timer = setInterval(() => void this.reload(), reloadMs);
      this.timer.unref();
    }
  }

  /** Without a CA file, clients verify servers against Node's default roots (bundled, plus NODE_EXTRA_CA_CERTS). */
  private caUpdate(): experimental.CaCertificateUpdate {
    return { caCertificate: this.current.ca ?? defaultRoots() };
  }

  private identityUpdate(): experimental.IdentityCertificateUpdate {
    return { certificate: this.current.cert, privateKey: this.current.key };
  }

  private async reload(): Promise<void> {
    if (this.reloading) return;
    this.reloading = true;
    try {
      const next = await readGrpcTlsFilesAsync(this.files);
      const same =
        next.cert.equals(this.current.cert) &&
        next.key.equals(this.current.key) &&
        (next.ca === null ? this.current.ca === null : this.current.ca !== null && next.ca.equals(this.current.ca));
      if (same) return;
      this.current = next;
      for (const l of this.identityListeners) l(this.identityUpdate());
      for (const l of this.caListeners) l(this.caUpdate());
      this.options.log?.info({ not_after: next.notAfter.toISOString() }, "gRPC TLS files changed: new connections use them");
    } catch (err) {
      this.options.log?.warn({ err }, "gRPC TLS files could not be reloaded; the previous ones stay in use");
    } finally {
      this.reloading = false;
    }
  }

  // grpc-js reads its credentials before it registers for updates: the first
  // update must come after the listener is added, never inside the call.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    process.nextTick(() => this.caListeners.has(listener) && listener(this.caUpdate()));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    process.nextTick(() => this.identityListeners.has(listener) && listener(this.identityUpdate()));
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  close(): void {
    clearInterval(this.timer);
  }
}

/** {@link createGrpcTls} for files already known to be set. */
export function createGrpcTlsFromFiles(files: GrpcTlsFiles, options: GrpcTlsOptions = {}): GrpcTls {
  const provider = new CheckedPemProvider(files, readGrpcTlsFiles(files), options);
  const mutual = files.ca !== undefined;
  // grpc-js 1.14 declares this function's parameters as (ca, identity), but
  // hands them to a constructor that takes (identity, ca): the identity goes
  // first. One provider serves both, so only the second's nullness matters.
  const server = experimental.createCertificateProviderServerCredentials(provider, mutual ? provider : null, mutual);
  const channel = experimental.createCertificateProviderChannelCredentials(
    provider,
    provider,
    options.skipHostnameCheck ? { checkServerIdentity: () => undefined } : {},
  );
  return {
    mutual,
    server,
    channel,
    notAfter: () => provider.current.notAfter,
    close: () => provider.close(),
  };
}

/**
 * The gRPC TLS of a service from its config (`LONGHAUL_GRPC_TLS_CERT`,
 * `_KEY`, `_CA`, `_RELOAD_SECONDS`); undefined when none is set, and the mesh
 * speaks plaintext. Throws a GrpcTlsError naming the variable at fault when
 * a file is missing, unreadable or not the PEM it should be.
 */
export function createGrpcTls(
  config: GrpcTlsSettings & { LONGHAUL_GRPC_TLS_RELOAD_SECONDS: number },
  log?: Logger,
): GrpcTls | undefined {
  const files = grpcTlsFiles(config);
  if (!files) return undefined;
  return createGrpcTlsFromFiles(files, { log, reloadMs: config.LONGHAUL_GRPC_TLS_RELOAD_SECONDS * 1000 });
}

/** How a service's gRPC is secured, as its `ready` line says it. */
export function grpcTlsMode(tls: GrpcTls | undefined): "off" | "on" | "mutual" {
  return tls ? (tls.mutual ? "mutual" : "on") : "off";
}
