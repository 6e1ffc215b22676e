import { describe, expect, it } from "vitest";
import { Router, type Route } from "./router.js";

const route = (method: string, pattern: string): Route => ({ method, pattern, auth: false, handler: async () => {} });

describe("Router", () => {
  const router = new Router();
  for (const r of [
    route("*", "/:project/:app/*"),
    route("GET", "/v1/runs/:id"),
    route("GET", "/v1/runs"),
    route("GET", "/healthz"),
  ]) {
    router.add(r);
  }

  it("prefers literal routes and decodes parameters", () => {
    expect(router.match("GET", "/v1/runs/abc")?.route.pattern).toBe("/v1/runs/:id");
    expect(router.match("GET", "/v1/runs/a%20b")?.params).toEqual({ id: "a b" });
    expect(router.match("GET", "/healthz")?.route.pattern).toBe("/healthz");
  });

  it("gives the gateway the raw rest of the path", () => {
    expect(router.match("PATCH", "/dev/echo/a%2Fb/c")).toMatchObject({
      params: { project: "dev", app: "echo" },
      rest: "/a%2Fb/c",
    });
    expect(router.match("GET", "/dev/echo")?.rest).toBe("/");
  });

  it("never hands a reserved first segment to the gateway", () => {
    expect(router.match("POST", "/v1/runs")).toBeUndefined();
    expect(router.match("GET", "/v1/nothing/here")).toBeUndefined();
    expect(router.match("GET", "/healthz/x")).toBeUndefined();
    expect(router.match("GET", "/onlyone")).toBeUndefined();
  });
});
