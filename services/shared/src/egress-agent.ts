import { Agent, buildConnector } from "undici";
import { resolveEgressTarget, type AddressResolver, type EgressPolicy } from "./egress.js";
import { LonghaulError } from "./errors.js";

/** Options of {@link guardedConnector}. */
export interface GuardOptions {
  /** What connects, for the refusal's message: `app` gives "app address refused: …". */
  what: string;
  /** Stands in for DNS (tests of pinning). @default dns.lookup(host, { all: true }) */
  resolve?: AddressResolver;
}

/** The `code` of the error a connection refused by the egress guard fails with. */
export const EGRESS_REFUSED = "ELONGHAUL_EGRESS";

/**
 * An undici connector that resolves the host itself, refuses it unless
 * every address passes the egress policy (resolveEgressTarget), and connects
 * to the first address checked, so a second DNS answer (rebinding) cannot
 * lead the socket elsewhere. `host` (the Host header's name) still gives TLS
 * its server name: certificates are verified against the URL's host, not
 * the address. An address literal goes through the same check. This is the
 * one guard of every outbound call to a user's URL: the invoker's calls to
 * apps and the notifier's webhooks.
 */
export function guardedConnector(
  connect: buildConnector.connector,
  policy: EgressPolicy,
  guard: GuardOptions,
): buildConnector.connector {
  return (opts, callback) => {
    const host = opts.hostname.replace(/^\[|\]$/g, "");
    const port = Number(opts.port) || (opts.protocol === "https:" ? 443 : 80);
    resolveEgressTarget(host, port, policy, guard.resolve).then(
      (addresses) => {
        const pinned = addresses[0]!;
        connect({ ...opts, hostname: pinned.address, host: opts.host ?? opts.hostname }, callback);
      },
      (err: unknown) => {
        // A name that does not resolve is a network error (worth retrying), not a refusal.
        if (!(err instanceof LonghaulError)) return callback(err instanceof Error ? err : new Error(String(err)), null);
        const reason = err.message.replace(/^refused: /, "");
        callback(Object.assign(new Error(`${guard.what} address refused: ${reason}`), { code: EGRESS_REFUSED }), null);
      },
    );
  };
}

/** An undici Agent whose every connection passes {@link guardedConnector}. */
export function createGuardedAgent(options: Agent.Options, policy: EgressPolicy, guard: GuardOptions): Agent {
  const connect = buildConnector((options.connect ?? {}) as buildConnector.BuildOptions);
  return new Agent({ ...options, connect: guardedConnector(connect, policy, guard) });
}

/** The egress guard's refusal inside an undici error (its cause chain), if that is what failed it. */
export function egressRefusal(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; message?: string; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (e.code === EGRESS_REFUSED) return e.message;
  }
  return undefined;
}
