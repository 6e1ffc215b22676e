import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["services/*/src/**/*.test.ts", "tests/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**", "tests/bench/**", "tests/soak/**"],
    testTimeout: 60_000,
    hookTimeout: 90_000,
    // Each file isolates itself (own database, own NATS prefix), so files run in parallel.
    fileParallelism: true,
    maxWorkers: 2,
    // A failed test is run once more before it counts: with two mesh files at
    // once on two cores, a timing-bound case may still miss now and then. The
    // ones seen (start-replicas' port race, pg-store's cursor, a watch that
    // read before its NATS subscription reached the server) are fixed; the
    // invoker-loss SIGSTOP case is not understood yet. A test that fails twice
    // still fails. Stopgap.
    retry: 1,
    globalSetup: ["tests/helpers/global-setup.ts"],
  },
});
