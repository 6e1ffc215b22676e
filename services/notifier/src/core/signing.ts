import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
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
 * The `webhook-signature` header: one `v1,<base64>` per secret, space
 * separated, made by the reference `standardwebhooks` package. That package
 * signs the payload's UTF-8 text, so a body that is not valid UTF-8 is signed
 * as its decoded text (as the package's own `verify` checks it).
 */
export function signatureHeader(secrets: readonly string[], webhookId: string, timestamp: Date, body: Buffer): string {
  return secrets.map((s) => new Webhook(s).sign(webhookId, timestamp, body)).join(" ");
}
