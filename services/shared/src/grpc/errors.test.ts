import type { ServiceError } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { LonghaulError } from "../errors.js";
import { errorFromFields, errorToFields, fromGrpcError, toServiceError } from "./errors.js";

/** What a client reads of `err` sent as a call's status (grpc-js hands the trailers back as they were sent). */
function overStatus(err: LonghaulError): LonghaulError {
  const sent = toServiceError(err);
  return fromGrpcError(Object.assign(new Error(sent.details), { code: sent.code, details: sent.details, metadata: sent.metadata }) as ServiceError);
}

/** The fields that make the HTTP answer: status (from the code), body, Retry-After and RateLimit headers. */
const visible = (e: LonghaulError) => ({ code: e.code, message: e.message, retryAfterSeconds: e.retryAfterSeconds, quota: e.quota });

describe("errors on a stream (SubmitRuns) and as a status", () => {
  const cases = [
    new LonghaulError("invalid_argument", "webhook_url: must be http(s)"),
    new LonghaulError("unauthenticated", "invalid API key"),
    new LonghaulError("permission_denied", "this key lacks the invoke scope (submitting a run)"),
    new LonghaulError("resource_exhausted", "project p is over its limit of 0.01 submits per second (burst 3)", {
      retryAfterSeconds: 97,
      quota: { limit: "submits_per_second", quota: 3, windowSeconds: 300, remaining: 0, resetSeconds: 97 },
    }),
    new LonghaulError("resource_exhausted", "max_queued", { retryAfterSeconds: 5, quota: { limit: "max_queued", quota: 2, remaining: 0, resetSeconds: 5 } }),
    new LonghaulError("unavailable", "the database is unavailable; try again", { retryAfterSeconds: 2 }),
    new LonghaulError("unavailable", "fractional", { retryAfterSeconds: 0.25 }),
    new LonghaulError("internal", "internal error"),
    new LonghaulError("already_exists", "run id taken"),
    new LonghaulError("result_gone", "gone"),
  ];
  it.each(cases.map((e) => [e.code, e.message, e] as const))("%s (%s) reads back as fromGrpcError reads its status", (_code, _message, err) => {
    expect(visible(errorFromFields(errorToFields(err)))).toEqual(visible(overStatus(err)));
  });

  it("an unknown code is internal and shows no message", () => {
    expect(visible(errorFromFields({ code: "nonsense", message: "a secret", quotaJson: "" }))).toEqual({
      code: "internal",
      message: "internal error",
      retryAfterSeconds: undefined,
      quota: undefined,
    });
  });
});
