// The scale-out tests (test/scale.test.ts) run on their own, after the others: they start a
// Redis, four server processes and two engines, which would starve the other real-engine tests
// of the two CPU cores if they ran beside them.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/scale.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 480_000,
    hookTimeout: 240_000,
    pool: "forks",
    maxWorkers: 1,
  },
});
