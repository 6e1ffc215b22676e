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
    // once on two cores, a few timing-bound cases still miss now and then (a
    // run.changed notice published before the watching scheduler's NATS
    // subscription reached the server, so an SSE stream skips `running`). The
    // port race of start-replicas and the cursor of pg-store are fixed. A test
    // that fails twice still fails. Stopgap.
    retry: 1,
    globalSetup: ["tests/helpers/global-setup.ts"],
  },
});
