const BEARER = /^Bearer[ ]+([^\s]+)\s*$/i;

/**
 * The token of an `Authorization: Bearer <token>` value (RFC 6750 §2.1), or
 * undefined when the value is absent or of another scheme. The same rule for
 * the HTTP header and the gRPC `authorization` metadata.
 */
export function bearerToken(authorization: string | null | undefined): string | undefined {
  const m = authorization ? BEARER.exec(authorization) : null;
  return m?.[1];
}
