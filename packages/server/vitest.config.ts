import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: [...configDefaults.exclude, "test/scale.test.ts"], // run alone: vitest.scale.config.ts
    globalSetup: ["test/global-setup.ts"],
    // Generous: these are behaviour tests, not timings; real-engine tests on a loaded 2-core CI box
    // take several times what they take alone.
    testTimeout: 240_000,
    hookTimeout: 180_000,
    pool: "forks",
    // e2e files each start a real engine; two at once is what a 2-core CI machine can take
    maxWorkers: 2,
  },
});
