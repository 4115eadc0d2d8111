// Once per browser-test run: the workbench built from the current source (the gateway serves
// dist/), the engine's Python (scripts/python-env.sh), and Debian's chromium checked for.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { build } from "vite";
import type { TestProject } from "vitest/node";

const here = import.meta.dirname;
const pkg = path.resolve(here, "../..");
const repoRoot = path.resolve(pkg, "../..");
export const CHROMIUM = "/usr/bin/chromium";

declare module "vitest" {
  export interface ProvidedContext {
    python: string;
  }
}

export default async function setup(project: TestProject): Promise<void> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh does it when missing)`,
    );
  }
  await build({ configFile: path.join(pkg, "vite.config.ts"), logLevel: "warn" });
  const venv = execFileSync("bash", [path.join(repoRoot, "scripts/python-env.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  project.provide("python", path.join(venv, "bin", "python"));
}
