import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Signed, expiring links to a run's stored result, sent in place of bodies too
 * large to POST inline to a webhook (the notifier signs, the ingress serves).
 * The signature is HMAC-SHA256 over `<run_id>.<expires>` with a key derived
 * from the mesh's internal token, so any service of the mesh can check it and
 * nobody outside can forge one. The link names one run and ends at `expires`.
 */

/** Path of a run's result on the gateway; the signed query is added to it. */
export function resultUrlPath(runId: string): string {
  return `/v1/runs/${encodeURIComponent(runId)}/result`;
}

/** The signing key: HMAC(LONGHAUL_INTERNAL_TOKEN, "result-url"), so the token itself never signs. */
export function resultUrlKey(internalToken: string): Buffer {
  return createHmac("sha256", internalToken).update("result-url").digest();
}

function signature(runId: string, expires: number, key: Buffer): string {
  return createHmac("sha256", key).update(`${runId}.${expires}`).digest("base64url");
}

/**
 * The absolute URL of a run's result under `baseUrl` (LONGHAUL_PUBLIC_URL),
 * valid until `expiresAt`: `<base>/v1/runs/<id>/result?expires=<unix s>&signature=<b64url>`.
 */
export function signResultUrl(baseUrl: string, runId: string, key: Buffer, expiresAt: Date): string {
  const expires = Math.floor(expiresAt.getTime() / 1000);
  const url = new URL(baseUrl);
  url.pathname = url.pathname.replace(/\/+$/, "") + resultUrlPath(runId);
  url.search = "";
  url.searchParams.set("expires", String(expires));
  url.searchParams.set("signature", signature(runId, expires, key));
  return url.toString();
}

/** Why a signed result URL was refused. */
export type ResultUrlRejection = "missing" | "malformed" | "expired" | "bad_signature";

/**
 * Checks the `expires` and `signature` query parameters of a request for a
 * run's result. Returns `null` when the link is valid, else why it is not
 * (an expired link is told apart so that the caller can say so).
 */
export function verifyResultUrl(
  runId: string,
  query: { expires?: string | null; signature?: string | null } | URLSearchParams,
  key: Buffer,
  now: Date = new Date(),
): ResultUrlRejection | null {
  const expiresRaw = query instanceof URLSearchParams ? query.get("expires") : query.expires;
  const given = query instanceof URLSearchParams ? query.get("signature") : query.signature;
  if (!expiresRaw || !given) return "missing";
  if (!/^\d{1,12}$/.test(expiresRaw)) return "malformed";
  const expires = Number(expiresRaw);
  const expected = Buffer.from(signature(runId, expires, key));
  const actual = Buffer.from(given);
  // Constant-time compare; lengths differ only for a malformed signature.
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) return "bad_signature";
  if (expires * 1000 < now.getTime()) return "expired";
  return null;
}
