// Once per test run: the engine's Python (scripts/python-env.sh) and the tiny model, generated
// into a temporary directory, for the end-to-end tests that run the real engine; Debian's
// redis-server for the scale-out tests (installed when missing); moto's S3 server for the
// object-store tests (its venv, installed when missing).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { ensureRedisInstalled } from "./redis.js";
import { s3Venv } from "./s3.js";

const repoRoot = path.resolve(import.meta.dirname, "../../..");

declare module "vitest" {
  export interface ProvidedContext {
    python: string;
    tinyModelDir: string;
  }
}

export default function setup(project: TestProject): () => void {
  const venv = execFileSync("bash", [path.join(repoRoot, "scripts/python-env.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  const python = path.join(venv, "bin", "python");
  const dir = mkdtempSync(path.join(tmpdir(), "kontext-tiny-"));
  const model = path.join(dir, "flux-kontext-tiny");
  execFileSync(python, ["-m", "kontext_engine.tiny", model], {
    cwd: path.join(repoRoot, "engine"),
    stdio: "ignore",
  });
  if (!existsSync(path.join(model, "model_index.json")))
    throw new Error(`the tiny model was not written to ${model}`);
  ensureRedisInstalled(); // once, before test files start Redis servers in parallel
  s3Venv(); // likewise: two installs at once into one venv would collide
  project.provide("python", python);
  project.provide("tinyModelDir", model);
  return () => rmSync(dir, { recursive: true, force: true });
}
