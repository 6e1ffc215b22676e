import { Webhook, WebhookVerificationError } from "standardwebhooks";

/** Headers of a webhook request: a plain object, a `Headers`, or Node's `IncomingHttpHeaders`. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

/** What a verified Longhaul webhook says about its run (headers `X-Longhaul-*`). */
export interface VerifiedWebhook {
  /** `webhook-id`: the same on a redelivery, so receivers can dedupe. */
  webhookId: string;
  runId: string | undefined;
  status: string | undefined;
  statusCode: number | undefined;
  /** The app's response body, as it was signed. */
  body: string;
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  const v = key === undefined ? undefined : headers[key];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Checks a webhook's Standard Webhooks signature (`webhook-id`,
 * `webhook-timestamp` within 5 minutes, `webhook-signature`) with the
 * project's secret (`whsec_...`) using the `standardwebhooks` package. Pass
 * the body exactly as received (the raw text, before any JSON parsing).
 * `secret` may be a list (the current and the previous secret during a
 * rotation): one match is enough. Throws `WebhookVerificationError` when no
 * secret matches.
 */
export function verifyWebhook(body: string | Uint8Array, headers: WebhookHeaders, secret: string | readonly string[]): VerifiedWebhook {
  const text = typeof body === "string" ? body : new TextDecoder().decode(body);
  const plain: Record<string, string> = {};
  for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
    const v = header(headers, name);
    if (v !== undefined) plain[name] = v;
  }
  const secrets = typeof secret === "string" ? [secret] : secret;
  let last: unknown = new WebhookVerificationError("No secret given");
  for (const s of secrets) {
    try {
      // The body is the app's own, of any content type: no JSON parsing here.
      new Webhook(s).verify(text, plain, { jsonParse: false });
      const code = header(headers, "x-longhaul-status-code");
      return {
        webhookId: plain["webhook-id"]!,
        runId: header(headers, "x-longhaul-run-id"),
        status: header(headers, "x-longhaul-run-status"),
        statusCode: code === undefined ? undefined : Number(code),
        body: text,
      };
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

export { WebhookVerificationError };
