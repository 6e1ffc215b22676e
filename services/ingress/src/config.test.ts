import { describe, expect, it } from "vitest";
import { ConfigError } from "@longhaul/shared/config";
import { loadConfig } from "./config.js";

const env = { LONGHAUL_INTERNAL_TOKEN: "config-test-token-config-test-token" };

describe("ingress config: INGRESS_KEEP_ALIVE_TIMEOUT_MS", () => {
  it("defaults to 65000 ms, above the 60 s idle timeout of common load balancers", () => {
    expect(loadConfig(env).INGRESS_KEEP_ALIVE_TIMEOUT_MS).toBe(65_000);
  });

  it("takes a value in milliseconds", () => {
    expect(loadConfig({ ...env, INGRESS_KEEP_ALIVE_TIMEOUT_MS: "120000" }).INGRESS_KEEP_ALIVE_TIMEOUT_MS).toBe(120_000);
  });

  it.each(["0", "-5", "1.5", "sixty", "3600001"])("refuses %j at start, naming the variable", (value) => {
    expect(() => loadConfig({ ...env, INGRESS_KEEP_ALIVE_TIMEOUT_MS: value })).toThrow(ConfigError);
    expect(() => loadConfig({ ...env, INGRESS_KEEP_ALIVE_TIMEOUT_MS: value })).toThrow(/INGRESS_KEEP_ALIVE_TIMEOUT_MS/);
  });
});
