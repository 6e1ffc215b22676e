import { LonghaulError } from "@longhaul/shared/errors";
import type { CallContext } from "@longhaul/shared/grpc";
import type { Tenancy } from "../../core/tenancy.js";
import type { KeyCaller, Scope } from "../../core/tenancy-model.js";

/** How often an open stream checks that its key still works (revocation reaches streams within 5 s). */
const STREAM_KEY_CHECK_MS = 1_000;

/** The bearer key of an `authorization` value (`Bearer <key>`); `unauthenticated` when there is none. */
export function bearerFrom(header: unknown): string {
  const match = typeof header === "string" ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  if (!match?.[1]) throw new LonghaulError("unauthenticated", "authorization metadata must be 'Bearer <api key>'");
  return match[1];
}

/** The bearer key of `authorization` metadata; `unauthenticated` when there is none. */
export function bearerOf(ctx: CallContext): string {
  return bearerFrom(ctx.metadata.get("authorization")[0]);
}

/**
 * The project key's caller of an `authorization` value (metadata, or a
 * SubmitRuns message's field), checked for `scope` (403 naming it otherwise).
 */
export async function callerOfAuthorization(tenancy: Tenancy, authorization: unknown, scope: Scope | null, what: string): Promise<KeyCaller> {
  const caller = await tenancy.authenticate(bearerFrom(authorization));
  if (scope) tenancy.requireScope(caller, scope, what);
  return caller;
}

/** The project key's caller, checked for `scope` (403 naming it otherwise). */
export function callerOf(tenancy: Tenancy, ctx: CallContext, scope: Scope | null, what: string): Promise<KeyCaller> {
  return callerOfAuthorization(tenancy, ctx.metadata.get("authorization")[0], scope, what);
}

/** How a watch stream ends when its scheduler copy shuts down: the gateway opens it again on another copy. */
export const WATCH_SHUTTING_DOWN = new LonghaulError("unavailable", "the scheduler is shutting down; watch on another copy");

/**
 * Runs a long call (a stream, a long poll) for as long as its key works: the
 * key is checked again every second, and once it is revoked the call ends
 * with `unauthenticated`. The call also holds one of the project's watch
 * stream slots (max_watch_streams) while it runs. When `closing` aborts (the
 * scheduler shuts down) the call's signal aborts and the call then ends with
 * `unavailable` ({@link WATCH_SHUTTING_DOWN}), which its client takes as
 * "watch on another copy".
 */
export async function whileKeyWorks(
  tenancy: Tenancy,
  ctx: CallContext,
  caller: KeyCaller,
  run: (signal: AbortSignal) => Promise<void>,
  closing?: AbortSignal,
): Promise<void> {
  const key = bearerOf(ctx);
  if (closing?.aborted) throw WATCH_SHUTTING_DOWN;
  const inner = new AbortController();
  const onOuter = () => inner.abort(ctx.signal.reason);
  ctx.signal.addEventListener("abort", onOuter, { once: true });
  const onClosing = () => inner.abort(WATCH_SHUTTING_DOWN);
  closing?.addEventListener("abort", onClosing, { once: true });
  let revoked: LonghaulError | undefined;
  const timer = setInterval(() => {
    tenancy.authenticate(key).then(
      () => undefined,
      (err: unknown) => {
        const e = LonghaulError.from(err);
        // Only a refused key ends the stream; a database hiccup does not.
        if (e.code !== "unauthenticated") return;
        revoked = e;
        inner.abort(e);
      },
    );
  }, STREAM_KEY_CHECK_MS);
  try {
    await tenancy.withWatchSlot(caller.project, () => run(inner.signal));
  } finally {
    clearInterval(timer);
    ctx.signal.removeEventListener("abort", onOuter);
    closing?.removeEventListener("abort", onClosing);
  }
  if (revoked) throw revoked;
  if (inner.signal.reason === WATCH_SHUTTING_DOWN) throw WATCH_SHUTTING_DOWN;
}
