// The soak's webhook receiver: a node:http server that checks each delivery's
// Standard Webhooks signature with the project's secret and keeps what came,
// by run id. (tests/webhooks.test.ts checks the signature with the reference
// `standardwebhooks` package; its verify() also JSON-parses the body, and the
// soak's trickled bodies are text, so the same check is written out here.)
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

/**
 * True when `headers` carry a valid `v1` signature of `body` under `secret`
 * (`whsec_<base64 key>`): HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>`.
 */
export function verifyStandardWebhook(secret, headers, body) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = String(headers["webhook-signature"] ?? "");
  if (!id || !timestamp || !signatures) return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.`).update(body).digest();
  return signatures.split(" ").some((s) => {
    const [version, value] = s.split(",");
    if (version !== "v1" || !value) return false;
    const given = Buffer.from(value, "base64");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

/**
 * Starts the receiver on loopback. `setSecret` must be called before the first
 * delivery can verify. Deliveries are kept by `x-longhaul-run-id`, every one
 * (a retried delivery shows up as a second entry).
 */
export async function startWebhookReceiver() {
  /** @type {Map<string, {at: number, verified: boolean, body: string, headers: Record<string, unknown>}[]>} */
  const byRun = new Map();
  let secret = "";
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const runId = String(req.headers["x-longhaul-run-id"] ?? "");
      const delivery = {
        at: Date.now(),
        verified: secret !== "" && verifyStandardWebhook(secret, req.headers, body),
        body: body.toString(),
        headers: req.headers,
      };
      byRun.set(runId, [...(byRun.get(runId) ?? []), delivery]);
      res.writeHead(204);
      res.end();
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    byRun,
    setSecret(s) {
      secret = s;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
