/**
 * The URL a call to an app reaches: the app's registered URL joined with the
 * path below `/{project}/{app}` and the caller's query, the same for sync and
 * async calls. The registered URL's path is a prefix (`https://h/api` + `/x`
 * is `https://h/api/x`); its own query, if any, comes first and the caller's
 * follows (`https://h/api?key=k` + `/x` + `y=1` is `https://h/api/x?key=k&y=1`);
 * a fragment is never sent (RFC 9110 §4.2.4: it is not part of a request).
 * `path` and `query` are passed on as they came, without re-encoding.
 */
export function joinAppUrl(appUrl: string, path: string, query: string): string {
  const hashless = appUrl.split("#")[0]!;
  const q = hashless.indexOf("?");
  const base = q === -1 ? hashless : hashless.slice(0, q);
  const baseQuery = q === -1 ? "" : hashless.slice(q + 1);
  const joinedPath = base.replace(/\/+$/, "") + (path.startsWith("/") ? path : `/${path}`);
  const fullQuery = [baseQuery, query].filter(Boolean).join("&");
  return fullQuery ? `${joinedPath}?${fullQuery}` : joinedPath;
}
