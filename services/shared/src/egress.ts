import { lookup as dnsLookup } from "node:dns/promises";
import ipaddr from "ipaddr.js";
import { LonghaulError } from "./errors.js";

/** Options of {@link validateWebhookUrl}. */
export interface WebhookUrlOptions {
  /** Allow loopback and private targets (local development). @default false */
  allowPrivate: boolean;
}

/**
 * The networks a webhook may reach besides public addresses: every one when
 * an operator allows private targets (LONGHAUL_WEBHOOK_ALLOW_PRIVATE), none
 * otherwise. Link-local and metadata addresses stay refused either way
 * (appAddressRefusal), as for apps.
 */
export function webhookNetworks(allowPrivate: boolean): string {
  return allowPrivate ? "0.0.0.0/0,::/0" : "";
}

/** The two webhook policies, compiled on first use (parsing the networks per submit was 5 % of the notifier's CPU). */
const webhookPolicies = new Map<boolean, EgressPolicy>();

/** The webhook policy as far as a URL alone can be checked (Longhaul's own addresses are checked at delivery). */
function webhookSubmitPolicy(allowPrivate: boolean): EgressPolicy {
  let policy = webhookPolicies.get(allowPrivate);
  if (!policy) webhookPolicies.set(allowPrivate, (policy = { allowedNetworks: parseNetworks(webhookNetworks(allowPrivate)), denied: [] }));
  return policy;
}

/**
 * Checks a webhook URL at submit: absolute http(s), no userinfo, and no IP
 * literal the egress policy refuses (appAddressRefusal, as for apps). WHATWG URL parsing
 * already folds decimal, octal, hex and short IPv4 spellings into dotted form,
 * so `http://2130706433/` is checked as 127.0.0.1. Names are checked again
 * after resolution at delivery.
 */
export function validateWebhookUrl(raw: string, options: WebhookUrlOptions): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new LonghaulError("invalid_argument", "webhookEndpoint must be an absolute http(s) URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new LonghaulError("invalid_argument", "webhookEndpoint must use http or https");
  }
  if (url.username || url.password) {
    throw new LonghaulError("invalid_argument", "webhookEndpoint must not carry credentials");
  }
  if (raw.length > 2048) {
    throw new LonghaulError("invalid_argument", "webhookEndpoint is longer than 2048 characters");
  }
  const { host, port } = hostAndPort(url);
  // An address literal is checked here, as every address is at delivery.
  const why = ipaddr.isValid(host) ? appAddressRefusal(host, port, webhookSubmitPolicy(options.allowPrivate)) : undefined;
  if (why) throw new LonghaulError("invalid_argument", `webhookEndpoint targets a private or reserved address (${why})`);
  if (!options.allowPrivate && (host === "localhost" || host.endsWith(".localhost") || host.endsWith(".internal"))) {
    throw new LonghaulError("invalid_argument", "webhookEndpoint targets a private or reserved address");
  }
  return url;
}

/*
 * App egress (DESIGN.md "Projects, keys and limits"): where an app URL may
 * point. Public unicast addresses are always allowed; link-local and cloud
 * metadata addresses, the unspecified address, multicast and broadcast never;
 * any other special-purpose address (private, loopback, CGNAT, ...) only
 * inside the allowed networks; and Longhaul's own dependencies and services
 * never. Every spelling of an address is one address here: WHATWG URL
 * parsing folds decimal, octal and hex IPv4 forms, ipaddr.js normalises
 * IPv6, and an IPv4-mapped IPv6 address is checked as the IPv4 it embeds.
 */

type Network = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Cloud metadata services: never an app, whatever the networks allowed. */
const METADATA_ADDRESSES = new Set(["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16"]);

/** Ranges refused whatever the networks allowed: they reach no app (or reach the host itself). */
const NEVER_RANGES = new Set(["linkLocal", "unspecified", "multicast", "broadcast"]);

/** The private ranges (RFC 1918, RFC 4193): in-cluster apps live there. Not loopback. */
export const DEFAULT_APP_NETWORKS = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7";

/** Where Longhaul's own parts listen: never an app. `port` 0: the whole host. */
export interface DeniedAddress {
  address: string;
  port: number;
}

/** The app egress policy, compiled once at start. */
export interface EgressPolicy {
  allowedNetworks: readonly Network[];
  denied: readonly DeniedAddress[];
}

function normalise(address: string): ipaddr.IPv4 | ipaddr.IPv6 {
  const parsed = ipaddr.parse(address);
  if (parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) return (parsed as ipaddr.IPv6).toIPv4Address();
  return parsed;
}

/** Parses a comma-separated CIDR list (`LONGHAUL_APP_ALLOWED_NETWORKS`); throws naming a bad entry. */
export function parseNetworks(raw: string): Network[] {
  return raw
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((cidr) => {
      try {
        const [addr, bits] = ipaddr.parseCIDR(cidr);
        return [addr, bits] as Network;
      } catch {
        throw new Error(`'${cidr}' is not a CIDR network (like 10.0.0.0/8 or fc00::/7)`);
      }
    });
}

/**
 * Why an app may not be reached at `address:port`, or undefined when it may.
 * `port` 0 checks the address alone (a whole denied host still matches).
 */
export function appAddressRefusal(address: string, port: number, policy: EgressPolicy): string | undefined {
  if (!ipaddr.isValid(address)) return `${address} is not an IP address`;
  const ip = normalise(address);
  const text = ip.toString();
  if (METADATA_ADDRESSES.has(text)) return `${text} is a cloud metadata address`;
  const range = ip.range();
  if (NEVER_RANGES.has(range)) return `${text} is a ${range} address`;
  for (const d of policy.denied) {
    if (d.address === text && (d.port === 0 || port === 0 || d.port === port)) {
      return `${text}${d.port ? `:${d.port}` : ""} is one of Longhaul's own services or dependencies`;
    }
  }
  if (range === "unicast") return undefined;
  for (const [net, bits] of policy.allowedNetworks) {
    if (net.kind() === ip.kind() && ip.match(net as never, bits)) return undefined;
  }
  return `${text} is a ${range} address outside LONGHAUL_APP_ALLOWED_NETWORKS`;
}

/** Resolves a host name to every address it has. */
export type AddressResolver = (hostname: string) => Promise<{ address: string; family: number }[]>;

const systemResolver: AddressResolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** A URL's host without IPv6 brackets, and its port (the scheme's default when absent). */
export function hostAndPort(url: URL): { host: string; port: number } {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  return { host, port };
}

/**
 * Resolves `host` and checks every address it has (a name with one refused
 * address among allowed ones is refused): the addresses to connect to, the
 * first one first, or a LonghaulError `invalid_argument` saying why not. A
 * name that does not resolve fails with the resolver's own error.
 */
export async function resolveEgressTarget(
  host: string,
  port: number,
  policy: EgressPolicy,
  resolve: AddressResolver = systemResolver,
): Promise<{ address: string; family: number }[]> {
  const family = ipaddr.isValid(host) ? (ipaddr.parse(host).kind() === "ipv6" ? 6 : 4) : 0;
  const addresses = family ? [{ address: host, family }] : await resolve(host);
  if (addresses.length === 0) throw new LonghaulError("invalid_argument", `${host} has no address`);
  for (const a of addresses) {
    const why = appAddressRefusal(a.address, port, policy);
    if (why) throw new LonghaulError("invalid_argument", `refused: ${family ? "" : `${host} resolves to ${a.address}, and `}${why}`);
  }
  return addresses;
}

/** {@link resolveEgressTarget} for an app URL: a refusal names the `url` field. */
export async function resolveAppTarget(
  host: string,
  port: number,
  policy: EgressPolicy,
  resolve: AddressResolver = systemResolver,
): Promise<{ address: string; family: number }[]> {
  try {
    return await resolveEgressTarget(host, port, policy, resolve);
  } catch (err) {
    if (err instanceof LonghaulError) throw new LonghaulError(err.code, `url: ${err.message.startsWith("refused") ? "" : "app host "}${err.message}`);
    throw err;
  }
}

/**
 * Checks an app URL when it is stored: http(s), no credentials, and a host
 * whose every address passes the policy. A name that does not resolve now is
 * let through: it is checked again, resolved, at every call.
 */
export async function checkAppUrl(raw: string, policy: EgressPolicy, resolve: AddressResolver = systemResolver): Promise<void> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return; // Not a URL: the app's validation says so.
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return;
  const { host, port } = hostAndPort(url);
  try {
    await resolveAppTarget(host, port, policy, resolve);
  } catch (err) {
    if (err instanceof LonghaulError) throw err;
    const code = (err as { code?: string }).code;
    if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "ENODATA") return;
    throw err;
  }
}

/** Where Longhaul's own parts are, as `host:port` addresses or URLs. */
export interface OwnAddresses {
  /** DATABASE_URL, NATS_URL (comma-separated servers), ... */
  urls: readonly string[];
  /** `host:port` lists (SCHEDULER_ADDR, LONGHAUL_MESH_ADDRESSES, ...), comma-separated. */
  hostPorts: readonly string[];
}

/**
 * Compiles the policy: the allowed networks, and the addresses of Longhaul's
 * own parts (names resolved now). A part on loopback is denied on its port
 * only (a developer's apps share the host); one elsewhere on every port.
 */
export async function createEgressPolicy(
  allowedNetworks: string,
  own: OwnAddresses,
  resolve: AddressResolver = systemResolver,
): Promise<EgressPolicy> {
  const targets: { host: string; port: number }[] = [];
  for (const raw of own.urls) {
    for (const one of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
      try {
        const u = new URL(one.includes("://") ? one : `tcp://${one}`);
        targets.push({ host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port) || defaultPort(u.protocol) });
      } catch {
        // Not a URL: nothing to deny (the service using it fails on its own).
      }
    }
  }
  for (const list of own.hostPorts) {
    for (const one of list.split(",").map((s) => s.trim()).filter(Boolean)) {
      const m = /^(?:dns:\/\/\/)?\[?([^\]]+?)\]?:(\d+)$/.exec(one);
      // Port 0 is "any free port" (tests, a second copy): the real one is not
      // known here, and 0 must not stand for the whole host (it would deny
      // every app on loopback).
      if (m && Number(m[2]) !== 0) targets.push({ host: m[1]!, port: Number(m[2]) });
    }
  }
  const denied: DeniedAddress[] = [];
  for (const t of targets) {
    let addresses: { address: string }[];
    try {
      addresses = ipaddr.isValid(t.host) ? [{ address: t.host }] : await resolve(t.host);
    } catch {
      continue; // A name that does not resolve here reaches nothing from here either.
    }
    for (const a of addresses) {
      const ip = normalise(a.address);
      denied.push({ address: ip.toString(), port: ip.range() === "loopback" ? t.port : 0 });
    }
  }
  return { allowedNetworks: parseNetworks(allowedNetworks), denied };
}

function defaultPort(protocol: string): number {
  return { "postgres:": 5432, "postgresql:": 5432, "nats:": 4222, "tls:": 4222, "http:": 80, "https:": 443 }[protocol] ?? 0;
}
