import { defineConfig } from "vitest/config";
import { alias } from "./vite.config.js";

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      // Controllers and plain modules (src/features/*/*.test.ts beside what they test): no browser, no server.
      {
        resolve: { alias },
        test: { name: "unit", include: ["src/**/*.test.ts", "test/unit/**/*.test.ts"] },
      },
      // playwright-core driving Debian's chromium against the real server and the tiny engine.
      {
        resolve: { alias },
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
