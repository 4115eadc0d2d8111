// Builds the workbench into dist/, which the gateway serves at `/` (packages/server/src/api/workbench.ts).
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "/",
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", sourcemap: true },
  oxc: { jsx: { runtime: "automatic", importSource: "react" } },
});
