import ipaddr from "ipaddr.js";
import { LonghaulError } from "./errors.js";

/**
 * Address ranges a webhook may not reach unless an operator allows private
 * targets: everything but ipaddr.js's "unicast" (loopback, private, link-local
 * with the 169.254.169.254 metadata address, CGNAT "carrierGradeNat",
 * unspecified, multicast, reserved, ...).
 */
export function isForbiddenAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return true;
  let parsed = ipaddr.parse(address);
  // ::ffff:10.0.0.1 and friends reach the IPv4 address they embed.
  if (parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  }
  const range = parsed.range();
  if (parsed.kind() === "ipv6") {
    // Global unicast IPv6 only; 6to4/teredo/NAT64 can embed a private IPv4.
    return range !== "unicast";
  }
  return range !== "unicast";
}

/** Options of {@link validateWebhookUrl}. */
export interface WebhookUrlOptions {
  /** Allow loopback and private targets (local development). @default false */
  allowPrivate: boolean;
}

/**
 * Checks a webhook URL at submit: absolute http(s), no userinfo, and (unless
 * private targets are allowed) no forbidden IP literal. WHATWG URL parsing
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
  if (!options.allowPrivate) {
    const host = url.hostname.replace(/^\[|\]$/g, "");
    if (ipaddr.isValid(host) && isForbiddenAddress(host)) {
      throw new LonghaulError("invalid_argument", "webhookEndpoint targets a private or reserved address");
    }
    if (host === "localhost" || host.endsWith(".localhost") || host.endsWith(".internal")) {
      throw new LonghaulError("invalid_argument", "webhookEndpoint targets a private or reserved address");
    }
  }
  return url;
}
