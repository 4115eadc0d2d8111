// Once per test run: the real server process (as `npm start` runs it) on a free loopback port,
// with the real engine on the tiny model (generated into a temporary directory).
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { freePort, waitHealthy } from "./support.js";

const API_KEY = "sk-kontext-client-tests";
export const repoRoot = path.resolve(import.meta.dirname, "../../..");

declare module "vitest" {
  export interface ProvidedContext {
    serverUrl: string;
    apiKey: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const venv = execFileSync("bash", [path.join(repoRoot, "scripts/python-env.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  const python = path.join(venv, "bin", "python");
  const dir = mkdtempSync(path.join(tmpdir(), "kontext-client-"));
  const model = path.join(dir, "flux-kontext-tiny");
  execFileSync(python, ["-m", "kontext_engine.tiny", model], {
    cwd: path.join(repoRoot, "engine"),
    stdio: "ignore",
  });
  const port = await freePort();
  const server: ChildProcess = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: path.join(repoRoot, "packages/server"),
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(port),
      KONTEXT_DATA_DIR: path.join(dir, "data"),
      KONTEXT_MODEL_DIR: model,
      KONTEXT_PYTHON: python,
      KONTEXT_DEVICES: "cpu",
      KONTEXT_LOG_LEVEL: "warn",
      KONTEXT_API_KEYS: API_KEY, // keys on: every test sends one, as a remote client would
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log: string[] = [];
  for (const s of [server.stdout, server.stderr]) s?.on("data", (d: Buffer) => log.push(d.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(url, server, log, 150_000);
  project.provide("serverUrl", url);
  project.provide("apiKey", API_KEY);
  return async () => {
    const exited = new Promise((r) => server.once("exit", r));
    server.kill("SIGTERM");
    const timer = setTimeout(() => server.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  };
}
