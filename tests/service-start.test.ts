/**
 * The one bootstrap of the four services (runService in @longhaul/shared/service),
 * as processes (dist/main.js, built by `npm test`): a bad configuration, or a
 * start that fails, is one fatal log line with its cause and exit code 1.
 */
import { spawn } from "node:child_process";
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
