import { describe, expect, it } from "vitest";
import { LonghaulError, isDatabaseOutage } from "./errors.js";

describe("LonghaulError.from", () => {
  it("answers a lost or refused database as unavailable with Retry-After, anything else as internal", () => {
    const outages = [
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }),
      Object.assign(new Error("terminating connection due to administrator command"), { code: "57P01" }),
      Object.assign(new Error("the database system is starting up"), { code: "57P03" }),
      Object.assign(new Error("connection failure"), { code: "08006" }),
      new Error("Connection terminated unexpectedly"),
      new Error("timeout exceeded when trying to connect"),
    ];
    for (const err of outages) {
      expect(isDatabaseOutage(err), err.message).toBe(true);
      expect(LonghaulError.from(err)).toMatchObject({ code: "unavailable", retryAfterSeconds: 2 });
    }
    for (const err of [new Error("boom"), Object.assign(new Error("duplicate key"), { code: "23505" }), "text", null]) {
      expect(isDatabaseOutage(err)).toBe(false);
      expect(LonghaulError.from(err).code).toBe("internal");
    }
  });
});
