/**
 * Masking of secrets in a stored request or response before it is shown
 * ("headers with secrets masked"). The dashboard and the JSON API
 * never hand a secret back, even to the key's own project: a screenshot or a
 * shared screen must not leak a customer's token.
 */

/** What a masked value is replaced with. */
export const MASK = "••••••";

/** Names that are secret whatever they are called in full. */
const SECRET_NAMES = new Set(["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"]);

/** Any name that says it holds a secret (`X-Auth-Token`, `client_secret`, `api-key`, `password`). */
const SECRET_PATTERN = /secret|token|key|passw(or)?d|signature|session/i;

/** True when a header or query parameter of this name holds a secret. */
export function isSecretName(name: string): boolean {
  return SECRET_NAMES.has(name.toLowerCase()) || SECRET_PATTERN.test(name);
}

/**
 * The value shown for a secret: the scheme of an `Authorization`-style value
 * stays (it tells Basic from Bearer), the credential never does.
 */
function maskValue(value: string): string {
  const scheme = /^(Basic|Bearer|Digest|Token)\s+\S/i.exec(value);
  return scheme ? `${scheme[1]} ${MASK}` : MASK;
}

/** Headers with every secret value masked; names and order are kept. */
export function maskHeaders(headers: readonly { name: string; value: string }[]): { name: string; value: string }[] {
  return headers.map((h) => ({ name: h.name, value: isSecretName(h.name) ? maskValue(h.value) : h.value }));
}

/**
 * A raw query string (no leading "?") with the values of secret-named
 * parameters masked; every other byte is kept as sent, order included.
 */
export function maskQuery(rawQuery: string): string {
  if (rawQuery === "") return "";
  return rawQuery
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      if (eq === -1) return pair;
      let name = pair.slice(0, eq);
      try {
        name = decodeURIComponent(name.replace(/\+/g, " "));
      } catch {
        // A malformed name is matched as sent.
      }
      return isSecretName(name) ? `${pair.slice(0, eq)}=${encodeURIComponent(MASK)}` : pair;
    })
    .join("&");
}
