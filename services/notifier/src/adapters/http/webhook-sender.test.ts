import { createHook } from "node:async_hooks";
import { setImmediate as nextTurn } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { classify } from "../../core/retry-policy.js";
import { newWebhookSecret, signatureHeader } from "../../core/signing.js";
import type { WebhookRequest } from "../../core/ports.js";
import { eventually, startReceiver, type Receiver } from "../../testing/receiver.js";
import { parseNetworks, webhookNetworks } from "@longhaul/shared/egress";
import { createWebhookSender, type Resolver } from "./webhook-sender.js";

// Every receiver here is a real HTTP server on loopback; private targets are
// allowed unless a test says otherwise, since loopback is all a test can reach.

const receivers: Receiver[] = [];
async function receiver(...args: Parameters<typeof startReceiver>): Promise<Receiver> {
  const r = await startReceiver(...args);
  receivers.push(r);
  return r;
}
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

const secret = newWebhookSecret();
function signed(url: string, body = '{"hello":"world"}'): WebhookRequest {
  const now = new Date();
  const bytes = Buffer.from(body);
  return {
    url,
    body: bytes,
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    headers: {
      "content-type": "application/json",
      "webhook-id": "msg_test",
      "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
      "webhook-signature": signatureHeader([secret], "msg_test", now, bytes),
      "user-agent": "Longhaul-Webhooks/1",
    },
  };
}

/** A sender under the egress policy the notifier builds: private targets allowed unless `allowPrivate` is false. */
const sender = (over: Partial<Omit<Parameters<typeof createWebhookSender>[0], "egress">> = {}) => {
  const allowPrivate = over.allowPrivate ?? true;
  const egress = { allowedNetworks: parseNetworks(webhookNetworks(allowPrivate)), denied: [] };
  return createWebhookSender({ allowPrivate, egress, timeoutMs: 1_000, maxResponseBytes: 64 * 1024, ...over });
};

describe("webhook sender against real receivers", () => {
  it("POSTs the signed body with its headers and reads the answer", async () => {
    const r = await receiver((_q, res) => res.writeHead(202, { "content-type": "text/plain" }).end("thanks"));
    const result = await sender().send(signed(`${r.url}/hook?x=1`));
    expect(result).toMatchObject({ kind: "response", statusCode: 202, excerpt: "thanks" });
    expect(classify(result).verdict).toBe("delivered");
    const got = r.received[0]!;
    expect(got.method).toBe("POST");
    expect(got.url).toBe("/hook?x=1");
    expect(got.headers["user-agent"]).toBe("Longhaul-Webhooks/1");
    expect(got.headers.traceparent).toBe("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    // The receiver's view, checked by the reference package.
    expect(new Webhook(secret).verify(got.body, got.headers as Record<string, string>)).toEqual({ hello: "world" });
  });

  it("bounds a hanging receiver by the attempt timeout", async () => {
    const r = await receiver(() => undefined); // never answers
    const started = Date.now();
    const result = await sender({ timeoutMs: 400 }).send(signed(r.url));
    const took = Date.now() - started;
    expect(result.kind).toBe("timeout");
    expect(classify(result).verdict).toBe("retry");
    expect(took).toBeGreaterThanOrEqual(350);
    expect(took).toBeLessThan(2_000);
    await eventually(() => r.openSockets() === 0);
  });

  it("leaves no timer running once an attempt has ended", async () => {
    // A timer per attempt left to fire later kept an idle notifier waking,
    // for the attempt timeout, after every burst of webhooks.
    const r = await receiver((_q, res) => res.writeHead(204).end());
    const timeoutMs = 7_777; // no other timer of this test lasts as long
    const live = new Set<number>();
    let created = 0;
    const hook = createHook({
      init(id, type, _trigger, resource) {
        if (type !== "Timeout" || (resource as { _idleTimeout?: number })._idleTimeout !== timeoutMs) return;
        live.add(id);
        created++;
      },
      destroy(id) {
        live.delete(id);
      },
    }).enable();
    try {
      const send = sender({ timeoutMs });
      // Answered, and failed (nothing listens on port 1).
      const results = await Promise.all([send.send(signed(r.url)), send.send(signed(r.url)), send.send(signed("http://127.0.0.1:1/hook"))]);
      expect(results.map((x) => x.kind)).toEqual(["response", "response", "network"]);
      expect(created).toBe(3); // one deadline per attempt...
      // ...each gone once its attempt ended (destroy hooks run on a later turn of the loop).
      await nextTurn();
      await nextTurn();
      expect(live.size).toBe(0);
    } finally {
      hook.disable();
    }
  });

  it("bounds a receiver that answers headers and then stalls", async () => {
    const r = await receiver((_q, res) => {
      res.writeHead(200);
      res.write("partial");
    });
    const started = Date.now();
    const result = await sender({ timeoutMs: 400 }).send(signed(r.url));
    expect(Date.now() - started).toBeLessThan(2_000);
    // The status came back: that is the receiver's answer.
    expect(result).toMatchObject({ kind: "response", statusCode: 200, excerpt: "partial" });
    expect(result.kind === "response" && result.bodyError).toBeTruthy();
  });

  it("reports a 500, to be retried, with the answer's excerpt", async () => {
    const r = await receiver((_q, res) => res.writeHead(500).end("database down"));
    const result = await sender().send(signed(r.url));
    expect(result).toMatchObject({ kind: "response", statusCode: 500, excerpt: "database down" });
    expect(classify(result).verdict).toBe("retry");
  });

  it("passes Retry-After on", async () => {
    const r = await receiver((_q, res) => res.writeHead(429, { "retry-after": "120" }).end());
    expect(await sender().send(signed(r.url))).toMatchObject({ statusCode: 429, retryAfter: "120" });
  });

  it("reports a socket destroyed mid-request as a network error", async () => {
    const r = await receiver((q) => q.socket.destroy());
    const result = await sender().send(signed(r.url));
    expect(result.kind).toBe("network");
    expect(classify(result).verdict).toBe("retry");
  });

  it("reports a refused connection as a network error", async () => {
    const r = await receiver();
    const url = r.url;
    await r.close();
    receivers.pop();
    const result = await sender().send(signed(url));
    expect(result).toMatchObject({ kind: "network" });
    expect(result.kind === "network" && result.message).toMatch(/ECONNREFUSED/);
  });

  it("does not follow a 302 to a private address, and counts it a failure", async () => {
    const target = await receiver();
    const r = await receiver((_q, res) =>
      res.writeHead(302, { location: `http://127.0.0.1:${target.port}/internal-admin` }).end(),
    );
    const result = await sender().send(signed(r.url));
    expect(result).toMatchObject({ kind: "response", statusCode: 302 });
    expect(classify(result).verdict).toBe("stop");
    expect(target.received).toHaveLength(0);
  });

  it("caps an endless answer and cuts its connection", async () => {
    const r = await receiver((_q, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      const chunk = Buffer.alloc(16 * 1024, 0x41);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once("drain", pump);
      };
      pump();
    });
    const started = Date.now();
    const result = await sender({ timeoutMs: 5_000, maxResponseBytes: 64 * 1024 }).send(signed(r.url));
    expect(Date.now() - started).toBeLessThan(2_000); // the cap ended it, not the timeout
    expect(result).toMatchObject({ kind: "response", statusCode: 200 });
    expect(result.kind === "response" && result.excerpt).toHaveLength(1024);
    await eventually(() => r.openSockets() === 0);
  });

  it("reports 410 Gone, which stops the delivery", async () => {
    const r = await receiver((_q, res) => res.writeHead(410).end("gone"));
    const result = await sender().send(signed(r.url));
    expect(result).toMatchObject({ kind: "response", statusCode: 410 });
    expect(classify(result).verdict).toBe("stop");
  });
});

describe("address checks at delivery", () => {
  it("refuses a name that resolves to loopback when private targets are not allowed", async () => {
    const r = await receiver();
    const calls: string[] = [];
    const resolve: Resolver = async (host) => {
      calls.push(host);
      return [{ address: "127.0.0.1", family: 4 }];
    };
    const result = await sender({ allowPrivate: false, resolve }).send(signed(`http://hooks.example.com:${r.port}/`));
    expect(result).toMatchObject({ kind: "refused" });
    expect(result.kind === "refused" && result.message).toMatch(/127\.0\.0\.1/);
    expect(classify(result).verdict).toBe("stop");
    expect(calls).toEqual(["hooks.example.com"]);
    expect(r.received).toHaveLength(0);
  });

  it("refuses a name with one private address among public ones", async () => {
    const resolve: Resolver = async () => [
      { address: "93.184.216.34", family: 4 },
      { address: "10.0.0.8", family: 4 },
    ];
    const result = await sender({ allowPrivate: false, resolve }).send(signed("https://hooks.example.com/"));
    expect(result).toMatchObject({ kind: "refused" });
  });

  it("refuses private IP literals, however spelt, before any connection", async () => {
    const r = await receiver();
    for (const host of ["127.0.0.1", "2130706433", "0x7f.1", "[::1]", "[::ffff:127.0.0.1]"]) {
      const result = await sender({ allowPrivate: false }).send(signed(`http://${host}:${r.port}/`));
      expect(result.kind, host).toBe("refused");
    }
    expect(r.received).toHaveLength(0);
  });

  it("connects to the address it checked, resolving once (no second lookup to rebind)", async () => {
    const r = await receiver();
    let calls = 0;
    // A name no real DNS knows: reaching the receiver proves the pinned address was used.
    const resolve: Resolver = async () => {
      calls += 1;
      return [{ address: "127.0.0.1", family: 4 }];
    };
    const result = await sender({ allowPrivate: true, resolve }).send(signed(`http://pinned.longhaul.invalid:${r.port}/p`));
    expect(result).toMatchObject({ kind: "response", statusCode: 200 });
    expect(calls).toBe(1);
    expect(r.received[0]!.headers.host).toBe(`pinned.longhaul.invalid:${r.port}`);
  });

  it("refuses a name that resolves to a metadata or link-local address even when private targets are allowed", async () => {
    for (const address of ["169.254.169.254", "fe80::1"]) {
      const resolve: Resolver = async () => [{ address, family: address.includes(":") ? 6 : 4 }];
      const result = await sender({ allowPrivate: true, resolve }).send(signed("http://hooks.example.com/"));
      expect(result, address).toMatchObject({ kind: "refused", message: expect.stringContaining("webhook address refused") });
    }
  });

  it("counts an unknown name as a network error, worth retrying", async () => {
    const result = await sender({ allowPrivate: false }).send(signed("http://no-such-host.longhaul.invalid/"));
    expect(result.kind).toBe("network");
  });

  it("refuses a URL it cannot use", async () => {
    expect((await sender().send(signed("ftp://example.com/"))).kind).toBe("refused");
    expect((await sender().send(signed("not a url"))).kind).toBe("refused");
  });
});
