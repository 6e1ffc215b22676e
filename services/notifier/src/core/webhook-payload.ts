import { signResultUrl } from "@longhaul/shared/result-url";
import type { Delivery, DeliveryInput, WebhookRequest } from "./ports.js";
import { compatWebhookBody } from "./compat-payload.js";
import { signatureHeader } from "./signing.js";

/** Run statuses that end without the app's answer. */
const ENDED_WITHOUT_ANSWER = new Set(["failed", "timed_out", "cancelled", "expired"]);

/** What {@link buildWebhookRequest} needs besides the run. */
export interface PayloadOptions {
  /** App bodies longer than this are replaced by a signed result URL. */
  maxInlineBytes: number;
  /** LONGHAUL_PUBLIC_URL: the gateway that serves result URLs. */
  publicUrl: string;
  /** Key of result URLs (resultUrlKey of the internal token). */
  resultUrlKey: Buffer;
  /** How long a result URL stays valid. */
  resultUrlTtlSeconds: number;
}

const JSON_TYPE = "application/json";

/**
 * The body and content type POSTed for a run: the app's own body and type
 * when it fits (for a run of a compatibility API, that platform's body); a JSON reference with a signed, expiring `result_url` when
 * it is larger than `maxInlineBytes` or was truncated when stored; and a JSON
 * error when the run ended with no answer from the app.
 */
export function webhookBody(input: DeliveryInput, options: PayloadOptions, now: Date): { body: Buffer; contentType: string } {
  const body = Buffer.from(input.body.buffer, input.body.byteOffset, input.body.byteLength);
  // A run of RunPod's or Replicate's API gets that platform's body, unless the answer is too big to inline.
  const compat = body.length <= options.maxInlineBytes && !input.bodyTruncated ? compatWebhookBody(input, options.publicUrl) : undefined;
  if (compat) return { body: Buffer.from(JSON.stringify(compat)), contentType: JSON_TYPE };
  if (body.length > options.maxInlineBytes || input.bodyTruncated) {
    const expiresAt = new Date(now.getTime() + options.resultUrlTtlSeconds * 1000);
    const reference = {
      run_id: input.runId,
      status: input.status,
      status_code: input.statusCode,
      content_type: input.contentType,
      result_url: signResultUrl(options.publicUrl, input.runId, options.resultUrlKey, expiresAt),
    };
    return { body: Buffer.from(JSON.stringify(reference)), contentType: JSON_TYPE };
  }
  if (body.length === 0 && ENDED_WITHOUT_ANSWER.has(input.status)) {
    const error = {
      run_id: input.runId,
      status: input.status,
      error: { code: input.errorCode || input.status, message: input.errorMessage },
    };
    return { body: Buffer.from(JSON.stringify(error)), contentType: JSON_TYPE };
  }
  return { body, contentType: input.contentType || (body.length ? "application/octet-stream" : JSON_TYPE) };
}

/**
 * The signed POST of one attempt. The timestamp is the attempt's own (Standard
 * Webhooks receivers refuse stale ones), the id is the delivery's (stable, so
 * receivers can drop a duplicate).
 */
export function buildWebhookRequest(
  delivery: Delivery,
  input: DeliveryInput,
  secrets: readonly string[],
  options: PayloadOptions,
  now: Date,
): WebhookRequest {
  const { body, contentType } = webhookBody(input, options, now);
  return {
    url: delivery.url,
    body,
    traceparent: input.traceparent,
    headers: {
      "content-type": contentType,
      "webhook-id": delivery.webhookId,
      "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
      "webhook-signature": signatureHeader(secrets, delivery.webhookId, now, body),
      "x-longhaul-run-id": input.runId,
      "x-longhaul-run-status": input.status,
      "x-longhaul-status-code": String(input.statusCode),
      "user-agent": "Longhaul-Webhooks/1",
    },
  };
}
