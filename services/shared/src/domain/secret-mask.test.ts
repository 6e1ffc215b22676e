import { describe, expect, it } from "vitest";
import { MASK, isSecretName, maskHeaders, maskQuery } from "./secret-mask.js";

describe("secret masking", () => {
  it("knows secret names, by name and by pattern", () => {
    for (const n of ["Authorization", "cookie", "Set-Cookie", "X-API-Key", "x-auth-token", "Client-Secret", "api_key", "password", "X-Hub-Signature"]) {
      expect(isSecretName(n), n).toBe(true);
    }
    for (const n of ["content-type", "accept", "x-request-id", "user-agent"]) expect(isSecretName(n), n).toBe(false);
  });

  it("masks header values, keeping the auth scheme, names and order", () => {
    expect(
      maskHeaders([
        { name: "Authorization", value: "Bearer abc.def" },
        { name: "content-type", value: "application/json" },
        { name: "Proxy-Authorization", value: "Basic dXNlcjpwYXNz" },
        { name: "x-api-key", value: "sk_live_1" },
      ]),
    ).toEqual([
      { name: "Authorization", value: `Bearer ${MASK}` },
      { name: "content-type", value: "application/json" },
      { name: "Proxy-Authorization", value: `Basic ${MASK}` },
      { name: "x-api-key", value: MASK },
    ]);
  });

  it("masks secret query parameters and keeps every other byte as sent", () => {
    expect(maskQuery("")).toBe("");
    expect(maskQuery("a=1&token=xyz&b=%20&flag")).toBe(`a=1&token=${encodeURIComponent(MASK)}&b=%20&flag`);
    expect(maskQuery("access%5Ftoken=1&api+key=2")).toBe(`access%5Ftoken=${encodeURIComponent(MASK)}&api+key=${encodeURIComponent(MASK)}`);
    expect(maskQuery("%E0%A4%A=1")).toBe("%E0%A4%A=1");
  });
});
