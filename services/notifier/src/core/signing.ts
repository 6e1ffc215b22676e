import { isUtf8 } from "node:buffer";
import { createHmac, createSecretKey, randomBytes, type KeyObject } from "node:crypto";
import type { WebhookSecrets } from "./ports.js";

/** A new project secret: `whsec_` + base64 of 24 random bytes (Standard Webhooks' format). */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString("base64")}`;
}

/**
 * The secrets that sign at `now`: the current one, and the previous one while
 * its overlap after a rotation lasts, so receivers can switch without a gap.
 */
export function signingSecrets(secrets: WebhookSecrets, now: Date): string[] {
  const out = [secrets.secret];
  if (secrets.previousSecret && secrets.previousExpiresAt && secrets.previousExpiresAt.getTime() > now.getTime()) {
    out.push(secrets.previousSecret);
  }
  return out;
}

/**
 * Keys of the secrets seen lately (a project's secret signs every one of its
 * webhooks), as KeyObjects: an HMAC from a KeyObject costs ~2 µs here, from
 * a Buffer key ~12 µs (the key is imported again each time).
 */
const keys = new Map<string, KeyObject>();

/** A Standard Webhooks secret's key: the base64 after the `whsec_` prefix. */
function keyOf(secret: string): KeyObject {
  let key = keys.get(secret);
  if (!key) {
    key = createSecretKey(Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64"));
    if (keys.size >= 1_000) keys.clear();
    keys.set(secret, key);
  }
  return key;
}

/**
 * The `webhook-signature` header: one `v1,<base64>` per secret, space
 * separated: HMAC-SHA256 of `<id>.<timestamp>.<body>` as Standard Webhooks
 * says, with node:crypto (the reference `standardwebhooks` package's
 * pure-JavaScript SHA-256 cost a few times more; its `verify` checks these in
 * the tests). That package signs the payload's UTF-8 text, so a body that is
 * not valid UTF-8 is signed as its decoded text, as its `verify` checks it.
 */
export function signatureHeader(secrets: readonly string[], webhookId: string, timestamp: Date, body: Buffer): string {
  const prefix = `${webhookId}.${Math.floor(timestamp.getTime() / 1000)}.`;
  const payload = isUtf8(body) ? body : Buffer.from(body.toString());
  return secrets.map((s) => `v1,${createHmac("sha256", keyOf(s)).update(prefix).update(payload).digest("base64")}`).join(" ");
}
