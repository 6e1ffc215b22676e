import { isIP } from "node:net";

/**
 * Name-resolution schemes of grpc-js a target may start with
 * (https://github.com/grpc/grpc/blob/master/doc/naming.md).
 */
const SCHEMES = ["dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:"];

/** Thrown when an address list cannot be turned into a gRPC target. */
export class AddressListError extends Error {
  override readonly name = "AddressListError";
}

function splitHostPort(entry: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(entry) ?? /^([^:[\]]+):(\d+)$/.exec(entry);
  if (!m) throw new AddressListError(`"${entry}" is not host:port (an IPv6 address goes in brackets: [::1]:50051)`);
  const port = Number(m[2]);
  if (port < 1 || port > 65_535) throw new AddressListError(`"${entry}": port out of range`);
  return { host: m[1]!, port };
}

/**
 * Turns an address list (`SCHEDULER_ADDR` and its siblings) into one grpc-js
 * target that names every copy of a service, for the `round_robin` policy to
 * spread calls over:
 *
 * - one `host:port`: `dns:///host:port`; every address the name resolves to is
 *   a copy (a Kubernetes headless Service, a Compose service with replicas);
 * - several, comma-separated (`127.0.0.1:50051,127.0.0.1:50061`): IP literals
 *   (or `localhost`), all of one family, since grpc-js's `ipv4:`/`ipv6:`
 *   schemes take lists of literals only; names are refused with a hint;
 * - a target with its own scheme (`dns://10.0.0.2/svc:50051`, `ipv4:…`,
 *   `unix:…`): used as it is.
 */
export function grpcTarget(list: string): string {
  const entries = list.split(",").map((e) => e.trim()).filter((e) => e !== "");
  if (entries.length === 0) throw new AddressListError("no address given");
  if (entries.length === 1 && SCHEMES.some((s) => entries[0]!.startsWith(s))) return entries[0]!;
  if (entries.some((e) => SCHEMES.some((s) => e.startsWith(s)))) {
    throw new AddressListError("a target with a scheme (dns:, ipv4:, unix:, …) stands alone, not in a list");
  }
  const parsed = entries.map(splitHostPort);
  if (parsed.length === 1) {
    const { host, port } = parsed[0]!;
    if (isIP(host) === 6) return `ipv6:[${host}]:${port}`;
    if (isIP(host) === 4) return `ipv4:${host}:${port}`;
    return `dns:///${host}:${port}`;
  }
  const literal = parsed.map(({ host, port }) => ({ host: host === "localhost" ? "127.0.0.1" : host, port }));
  const families = new Set(literal.map(({ host }) => isIP(host)));
  if (families.has(0)) {
    throw new AddressListError(
      `several addresses must be IP literals or localhost (${list}); for copies behind one DNS name, give that one name`,
    );
  }
  if (families.size > 1) throw new AddressListError(`IPv4 and IPv6 addresses cannot be mixed in one list (${list})`);
  return families.has(4)
    ? `ipv4:${literal.map(({ host, port }) => `${host}:${port}`).join(",")}`
    : `ipv6:${literal.map(({ host, port }) => `[${host}]:${port}`).join(",")}`;
}
