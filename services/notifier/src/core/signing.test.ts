import { describe, expect, it } from "vitest";
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { resultUrlKey, verifyResultUrl } from "@longhaul/shared/result-url";
import { newWebhookSecret, signatureHeader, signingSecrets } from "./signing.js";
import { buildWebhookRequest, webhookBody, type PayloadOptions } from "./webhook-payload.js";
import type { Delivery, DeliveryInput } from "./ports.js";

// Every check here goes through the reference package's Webhook.verify, not our own code.

const delivery: Delivery = {
  runId: "0b7e6e1c-4c84-4c36-9d3c-3b8f8f0f9a11",
  projectId: "dev",
  webhookId: "msg_0b7e6e1c-4c84-4c36-9d3c-3b8f8f0f9a11",
  url: "https://receiver.example/hook",
  state: "pending",
  attemptsMade: 0,
  seriesStart: 0,
  nextAttemptAt: new Date(),
  lastError: null,
  createdAt: new Date(),
  updatedAt: new Date(),
};

const input = (over: Partial<DeliveryInput> = {}): DeliveryInput => ({
  runId: delivery.runId,
  project: "dev",
  app: "echo",
  webhookUrl: delivery.url,
  status: "succeeded",
  statusCode: 200,
  contentType: "application/json; charset=utf-8",
  body: Buffer.from('{"answer":42,"text":"héllo ✓"}'),
  bodyTruncated: false,
  errorCode: "",
  errorMessage: "",
  traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
  ...over,
});

const token = "an-internal-token-of-enough-length";
const options: PayloadOptions = {
  maxInlineBytes: 1024,
  publicUrl: "https://longhaul.example/base/",
  resultUrlKey: resultUrlKey(token),
  resultUrlTtlSeconds: 3600,
};

function verify(secret: string, headers: Record<string, string>, body: Buffer): unknown {
  return new Webhook(secret).verify(body, headers);
}

describe("webhook secrets and signatures", () => {
  it("makes whsec_ secrets of 24 random bytes", () => {
    const s = newWebhookSecret();
    expect(s).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(Buffer.from(s.slice(6), "base64")).toHaveLength(24);
    expect(newWebhookSecret()).not.toBe(s);
  });

  it("signs a request that standardwebhooks verifies, with every header named", () => {
    const secret = newWebhookSecret();
    const req = buildWebhookRequest(delivery, input(), [secret], options, new Date());
    expect(verify(secret, req.headers, req.body)).toEqual({ answer: 42, text: "héllo ✓" });
    expect(req.headers).toMatchObject({
      "content-type": "application/json; charset=utf-8",
      "webhook-id": delivery.webhookId,
      "x-longhaul-run-id": delivery.runId,
      "x-longhaul-run-status": "succeeded",
      "x-longhaul-status-code": "200",
      "user-agent": "Longhaul-Webhooks/1",
    });
    expect(req.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/=]+$/);
    expect(req.traceparent).toBe(input().traceparent);
  });

  it("fails verification with another secret, a changed body or a changed id", () => {
    const secret = newWebhookSecret();
    const req = buildWebhookRequest(delivery, input(), [secret], options, new Date());
    expect(() => verify(newWebhookSecret(), req.headers, req.body)).toThrow(WebhookVerificationError);
    expect(() => verify(secret, req.headers, Buffer.from('{"answer":43}'))).toThrow(WebhookVerificationError);
    expect(() => verify(secret, { ...req.headers, "webhook-id": "msg_other" }, req.body)).toThrow(
      WebhookVerificationError,
    );
  });

  it("signs with both secrets during a rotation, so old and new both verify", () => {
    const now = new Date();
    const oldSecret = newWebhookSecret();
    const newSecret = newWebhookSecret();
    const keys = signingSecrets(
      { projectId: "dev", secret: newSecret, previousSecret: oldSecret, previousExpiresAt: new Date(now.getTime() + 60_000) },
      now,
    );
    expect(keys).toEqual([newSecret, oldSecret]);
    const req = buildWebhookRequest(delivery, input(), keys, options, now);
    expect(req.headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    expect(verify(oldSecret, req.headers, req.body)).toBeTruthy();
    expect(verify(newSecret, req.headers, req.body)).toBeTruthy();
  });

  it("stops signing with the previous secret once its overlap ends", () => {
    const now = new Date();
    const keys = signingSecrets(
      { projectId: "dev", secret: "whsec_bmV3", previousSecret: "whsec_b2xk", previousExpiresAt: new Date(now.getTime() - 1) },
      now,
    );
    expect(keys).toEqual(["whsec_bmV3"]);
  });

  it("signs the attempt's own timestamp (stale ones are refused by receivers)", () => {
    const secret = newWebhookSecret();
    const old = new Date(Date.now() - 10 * 60_000);
    const req = buildWebhookRequest(delivery, input(), [secret], options, old);
    expect(req.headers["webhook-timestamp"]).toBe(String(Math.floor(old.getTime() / 1000)));
    expect(() => verify(secret, req.headers, req.body)).toThrow(/too old/);
  });

  it("signs an empty body", () => {
    const secret = newWebhookSecret();
    const header = signatureHeader([secret], "msg_x", new Date(), Buffer.alloc(0));
    const ts = String(Math.floor(Date.now() / 1000));
    expect(
      verify(secret, { "webhook-id": "msg_x", "webhook-timestamp": ts, "webhook-signature": header }, Buffer.alloc(0)),
    ).toBeUndefined();
  });
});

describe("signatures as the reference package makes them", () => {
  it("are the same bytes for UTF-8, binary and empty bodies, with one and two secrets", () => {
    const at = new Date("2030-01-01T00:00:00.900Z");
    const [a, b] = [newWebhookSecret(), newWebhookSecret()];
    const bodies = [Buffer.from('{"ok":"é ✓"}'), Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x41]), Buffer.alloc(0)];
    for (const body of bodies) {
      const reference = [a, b].map((s) => new Webhook(s).sign("msg_x", at, body)).join(" ");
      expect(signatureHeader([a, b], "msg_x", at, body)).toBe(reference);
    }
  });
});

describe("webhook bodies", () => {
  const now = new Date("2030-01-01T00:00:00Z");

  it("posts the app's body and content type as they are", () => {
    const { body, contentType } = webhookBody(input({ contentType: "text/csv", body: Buffer.from("a,b\n1,2\n") }), options, now);
    expect(body.toString()).toBe("a,b\n1,2\n");
    expect(contentType).toBe("text/csv");
  });

  it("posts a failed app answer as the app gave it (status in the headers)", () => {
    const { body, contentType } = webhookBody(
      input({ status: "failed", statusCode: 500, contentType: "text/plain", body: Buffer.from("boom"), errorCode: "app_error" }),
      options,
      now,
    );
    expect(body.toString()).toBe("boom");
    expect(contentType).toBe("text/plain");
  });

  it.each(["failed", "timed_out", "cancelled", "expired"] as const)("describes a %s run with no body as JSON", (status) => {
    const { body, contentType } = webhookBody(
      input({ status, statusCode: 0, contentType: "", body: Buffer.alloc(0), errorCode: "timeout", errorMessage: "12 h passed" }),
      options,
      now,
    );
    expect(contentType).toBe("application/json");
    expect(JSON.parse(body.toString())).toEqual({
      run_id: delivery.runId,
      status,
      error: { code: "timeout", message: "12 h passed" },
    });
  });

  it("sends a signed, expiring result URL instead of a body over the inline limit", () => {
    const big = Buffer.alloc(options.maxInlineBytes + 1, 0x61);
    const { body, contentType } = webhookBody(input({ body: big, contentType: "text/plain" }), options, now);
    expect(contentType).toBe("application/json");
    const ref = JSON.parse(body.toString());
    expect(ref).toMatchObject({ run_id: delivery.runId, status: "succeeded", status_code: 200, content_type: "text/plain" });
    const url = new URL(ref.result_url);
    expect(url.origin + url.pathname).toBe(`https://longhaul.example/base/v1/runs/${delivery.runId}/result`);
    expect(Number(url.searchParams.get("expires"))).toBe(now.getTime() / 1000 + 3600);
    expect(verifyResultUrl(delivery.runId, url.searchParams, resultUrlKey(token), now)).toBeNull();
    expect(verifyResultUrl(delivery.runId, url.searchParams, resultUrlKey(token), new Date(now.getTime() + 3601_000))).toBe(
      "expired",
    );
    expect(verifyResultUrl("11111111-1111-1111-1111-111111111111", url.searchParams, resultUrlKey(token), now)).toBe(
      "bad_signature",
    );
    expect(verifyResultUrl(delivery.runId, url.searchParams, resultUrlKey("another-token-of-enough-length"), now)).toBe(
      "bad_signature",
    );
  });

  it("sends a result URL for a body truncated when stored", () => {
    const { body } = webhookBody(input({ body: Buffer.from("partial"), bodyTruncated: true }), options, now);
    expect(JSON.parse(body.toString()).result_url).toContain("signature=");
  });
});
