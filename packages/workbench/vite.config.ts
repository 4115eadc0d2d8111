// Builds the workbench into dist/, which the gateway serves at `/` (packages/server/src/api/workbench.ts).
// @kontext/client comes from its source (its generated types and its event parser), not a build.
import path from "node:path";
import { defineConfig } from "vite";

export const alias = { "@kontext/client": path.resolve(import.meta.dirname, "../client/src/index.ts") };

export default defineConfig({
  root: import.meta.dirname,
  base: "/",
  resolve: { alias },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", sourcemap: true },
  oxc: { jsx: { runtime: "automatic", importSource: "react" } },
});
