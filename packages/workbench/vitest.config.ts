import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      // The plain modules of src/lib: no browser, no server.
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      // playwright-core driving Debian's chromium against the real server and the tiny engine.
      {
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          globalSetup: ["test/browser/global-setup.ts"],
          testTimeout: 180_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
