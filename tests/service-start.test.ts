/**
 * The one bootstrap of the four services (runService in @longhaul/shared/service),
 * as processes (dist/main.js, built by `npm test`): a bad configuration, or a
 * start that fails, is one fatal log line with its cause and exit code 1.
 * gRPC TLS files that are half a pair, unreadable or not PEM are a bad
 * configuration too.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createTestNats } from "./helpers/isolation.js";

const SERVICES = ["scheduler", "invoker", "notifier", "ingress"] as const;
const TOKEN = "test-internal-token-0123456789";

type LogLine = { level?: number; msg?: string; service?: string; err?: { message?: string } };

/** Runs a service's main.ts to its exit; its JSON log lines and exit code. */
function runMain(service: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; lines: LogLine[]; stderr: string }> {
  const main = fileURLToPath(new URL(`../services/${service}/dist/main.js`, import.meta.url));
  const child = spawn(process.execPath, [main], { env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => {
    child.on("close", (code) => {
      const lines = stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as LogLine);
      resolve({ code, lines, stderr });
    });
  });
}

describe("service start-up", () => {
  let taken: Server | undefined;
  let nats: Awaited<ReturnType<typeof createTestNats>> | undefined;
  afterAll(async () => {
    await new Promise((r) => (taken ? taken.close(r) : r(undefined)));
    await nats?.cleanup();
  });

  for (const service of SERVICES) {
    it(`${service}: a bad configuration is logged, naming the variable, and exits 1`, async () => {
      const { code, lines } = await runMain(service, { LONGHAUL_INTERNAL_TOKEN: "short" });
      expect(code).toBe(1);
      const fatal = lines.find((l) => l.level === 60);
      expect(fatal).toMatchObject({ service, msg: `${service} has a bad configuration` });
      expect(fatal?.err?.message).toContain("LONGHAUL_INTERNAL_TOKEN");
    });
  }

  for (const service of SERVICES) {
    it(`${service}: gRPC TLS with a certificate but no key is a bad configuration naming the missing variable`, async () => {
      const { code, lines } = await runMain(service, { LONGHAUL_INTERNAL_TOKEN: TOKEN, LONGHAUL_GRPC_TLS_CERT: "/etc/longhaul/tls.crt" });
      expect(code).toBe(1);
      const fatal = lines.filter((l) => l.level === 60);
      expect(fatal).toHaveLength(1);
      expect(fatal[0]).toMatchObject({ service, msg: `${service} has a bad configuration` });
      expect(fatal[0]?.err?.message).toBe(
        "invalid configuration:\n  LONGHAUL_GRPC_TLS_KEY: must be set when LONGHAUL_GRPC_TLS_CERT is (gRPC TLS needs a certificate and its key)",
      );
    });
  }

  it("scheduler: gRPC TLS files that cannot be read, or are not PEM, are a bad configuration naming the variable", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "longhaul-tls-"));
    try {
      const notPem = path.join(dir, "tls.crt");
      writeFileSync(notPem, "not a certificate\n");
      const missing = await runMain("scheduler", {
        LONGHAUL_INTERNAL_TOKEN: TOKEN,
        LONGHAUL_GRPC_TLS_CERT: path.join(dir, "absent.crt"),
        LONGHAUL_GRPC_TLS_KEY: path.join(dir, "absent.key"),
      });
      expect(missing.code).toBe(1);
      expect(missing.lines.find((l) => l.level === 60)?.err?.message).toContain(`LONGHAUL_GRPC_TLS_CERT: cannot read ${path.join(dir, "absent.crt")} (ENOENT)`);
      const bad = await runMain("scheduler", { LONGHAUL_INTERNAL_TOKEN: TOKEN, LONGHAUL_GRPC_TLS_CERT: notPem, LONGHAUL_GRPC_TLS_KEY: notPem });
      expect(bad.code).toBe(1);
      expect(bad.lines.find((l) => l.level === 60)?.err?.message).toContain(`LONGHAUL_GRPC_TLS_CERT: ${notPem} holds no PEM certificate`);
      expect(bad.lines.some((l) => l.msg === "ready")).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("invoker: a start that fails (its gRPC port is taken) is logged with its cause and exits 1", async () => {
    nats = await createTestNats();
    taken = createServer();
    await new Promise<void>((r) => taken!.listen(0, "127.0.0.1", r));
    const port = (taken.address() as AddressInfo).port;
    const { code, lines } = await runMain("invoker", {
      LONGHAUL_INTERNAL_TOKEN: TOKEN,
      NATS_URL: nats.url,
      LONGHAUL_NATS_PREFIX: nats.prefix,
      SCHEDULER_ADDR: "127.0.0.1:1",
      INVOKER_GRPC_HOST: "127.0.0.1",
      INVOKER_GRPC_PORT: String(port),
      INVOKER_METRICS_HOST: "127.0.0.1",
      INVOKER_METRICS_PORT: "0",
    });
    expect(code).toBe(1);
    const fatal = lines.find((l) => l.level === 60);
    expect(fatal).toMatchObject({ service: "invoker", msg: "invoker failed to start" });
    expect(fatal?.err?.message).toBeTruthy();
    expect(lines.some((l) => l.msg === "ready")).toBe(false);
  });
});
