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
    globalSetup: ["tests/helpers/global-setup.ts"],
  },
});
