/**
 * The JSON API as the dashboard calls it: same origin, the API key from
 * sessionStorage (signed in per browser tab, gone when it closes)
 * in `Authorization`, errors as {@link ApiError}.
 */

const KEY_ITEM = "longhaul.apiKey";

/** An error answer of the API (`{"error":{"code","message"}}`) or a failed fetch (status 0). */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function apiKey(): string | null {
  return sessionStorage.getItem(KEY_ITEM);
}

export function setApiKey(key: string): void {
  sessionStorage.setItem(KEY_ITEM, key);
}

export function clearApiKey(): void {
  sessionStorage.removeItem(KEY_ITEM);
}

let unauthorized: () => void = () => undefined;

/** Called when an answer is a 401: the key was revoked or is wrong. */
export function onUnauthorized(fn: () => void): void {
  unauthorized = fn;
}

/** Headers of every API call. */
export function authHeaders(key = apiKey()): Record<string, string> {
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** The ApiError an answer stands for. */
export async function errorOf(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
  } catch {
    // Not the API's JSON (a proxy's page): the status line says enough.
  }
  return new ApiError(res.status, code, message);
}

/** Options of {@link api}. */
export interface ApiInit {
  method?: string;
  signal?: AbortSignal;
  /** Another key than the signed-in one (sign-in tries a key before keeping it). */
  key?: string;
  /** Sent as JSON. */
  body?: unknown;
  /** A 401 is only reported, not a reason to sign out (a probe of what a key may do). */
  quiet?: boolean;
}

/** Calls the API; resolves with the parsed JSON (undefined for a 204). */
export async function api<T>(path: string, init: ApiInit = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: init.method ?? "GET",
      headers: {
        accept: "application/json",
        ...(init.body !== undefined ? { "content-type": "application/json" } : {}),
        ...authHeaders(init.key ?? apiKey()),
      },
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      signal: init.signal,
      cache: "no-store",
    });
  } catch (err) {
    if (init.signal?.aborted) throw err;
    throw new ApiError(0, "network", "Longhaul cannot be reached; retrying");
  }
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && init.key === undefined && !init.quiet) unauthorized();
    throw err;
  }
  return (res.status === 204 ? undefined : await res.json()) as T;
}

/** A query string from the non-empty values (`run` may repeat). */
export function query(params: Record<string, string | readonly string[] | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const one of typeof v === "string" ? [v] : (v ?? [])) if (one !== "") q.append(k, one);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
