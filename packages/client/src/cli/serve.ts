// `kontext serve` and `kontext worker`: run the server from this repository, as `npm start` does
// (installs what is missing, builds, serves), with the options passed as its settings.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { UsageError } from "./params.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");

export interface ServeOptions {
  host?: string;
  port?: string;
  dataDir?: string;
  modelDir?: string;
  devices?: string;
}

const ENV_OF: Record<keyof ServeOptions, string> = {
  host: "HOST",
  port: "PORT",
  dataDir: "KONTEXT_DATA_DIR",
  modelDir: "KONTEXT_MODEL_DIR",
  devices: "KONTEXT_DEVICES",
};

/** Runs scripts/start.sh with the options as environment; resolves with its exit status. */
export function serve(opts: ServeOptions, extraEnv: Record<string, string> = {}): Promise<number> {
  const script = path.join(repoRoot, "scripts/start.sh");
  if (!existsSync(script))
    throw new UsageError(`kontext serve runs from the Kontext repository: ${script} is missing`);
  const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv };
  for (const [k, name] of Object.entries(ENV_OF)) {
    const v = opts[k as keyof ServeOptions];
    if (v !== undefined) env[name] = k === "dataDir" || k === "modelDir" ? path.resolve(v) : v;
  }
  const child = spawn("bash", [script], { env, stdio: "inherit" });
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  process.on("SIGINT", forward("SIGINT"));
  process.on("SIGTERM", forward("SIGTERM"));
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1))));
}
