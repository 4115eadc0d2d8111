// The process: reads the config, has compose.ts build the services, starts them and listens.
// The only module that opens a port or spawns processes. KONTEXT_ROLE picks what this process is:
// `all` (HTTP and engines), `gateway` (HTTP) or `worker` (engines pulling jobs from Redis; its
// /metrics and /healthz on KONTEXT_METRICS_PORT).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Composition, checkConfig, compose } from "./compose.js";
import { type Config, ConfigError, loadConfig } from "./config.js";
import { engineCommand } from "./engine/command.js";
import type { EngineCommand } from "./engine/process.js";
import { ObjectStoreError } from "./storage/objects.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const TINY_MODEL_SUBDIR = path.join("models", "flux-kontext-tiny");

function pythonOf(config: Config): string {
  if (config.python) return config.python;
  const venv = execFileSync("bash", [path.join(repoRoot, "scripts/python-env.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  return path.join(venv, "bin", "python");
}

/** The weights directory: the configured one, or the tiny demo model (generated when missing). */
function modelDirOf(config: Config, python: string, log: (m: string) => void): string {
  if (config.modelDir) return config.modelDir;
  const dir = path.join(config.dataDir, TINY_MODEL_SUBDIR);
  if (!existsSync(path.join(dir, "model_index.json"))) {
    log(`no KONTEXT_MODEL_DIR: generating the tiny demo model (random weights, output is noise) in ${dir}`);
    execFileSync(python, ["-m", "kontext_engine.tiny", dir], {
      cwd: path.join(repoRoot, "engine"),
      stdio: "inherit",
    });
  }
  return dir;
}

export async function main(): Promise<void> {
  const info = (m: string) => process.stderr.write(`kontext: ${m}\n`);
  const log = (_level: string, msg: string) => info(msg);
  let config: Config;
  let c: Composition;
  try {
    config = loadConfig();
    checkConfig(config);
    c = await compose(config, {
      // Only engines of this machine need the Python environment and a model (main spawns them).
      engineCommand: config.role !== "gateway" ? localEngineCommand(config, info) : undefined,
      log,
      logger: { level: config.logLevel },
      workbenchDir: path.join(repoRoot, "packages/workbench/dist"),
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kontext: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof ObjectStoreError) {
      process.stderr.write(`kontext: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  await c.start();
  if (c.app) {
    await c.app.listen({ host: config.host, port: config.port });
    info(
      `serving on http://${config.host}:${config.port} (data in ${config.dataDir}, files in ${c.files.location})`,
    );
  } else info(`worker ${hostname()}:${process.pid}: files in ${c.files.location}`);
  const metricsListener = c.metricsListener;
  if (metricsListener) {
    await new Promise<void>((resolve, reject) => {
      metricsListener.once("error", reject);
      metricsListener.listen(config.metricsPort, config.host, () => {
        metricsListener.off("error", reject);
        resolve();
      });
    });
    info(`metrics on http://${config.host}:${config.metricsPort}/metrics`);
  }

  // Graceful stop: no new generations (503, /healthz 503), running ones get the grace period to
  // finish (their clients, webhooks and streams are still served), then the engines stop and
  // whatever did not finish is queued again (for the next start, or for another worker).
  // A second signal stops at once.
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      info(`${signal} again: stopping now`);
      await c.engine?.stop();
      process.exit(1);
    }
    stopping = true;
    const drained = c.drain(config.shutdownGraceS * 1000);
    info(
      `${signal}: stopping; ${c.runningCount()} running generation(s) get up to ${config.shutdownGraceS} s to finish`,
    );
    await drained;
    await new Promise((r) => setTimeout(r, 200)); // let final events reach open streams
    await c.close();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

/** How this machine's engines start: the configured or tiny model, in the engine's Python. */
function localEngineCommand(
  config: Config,
  info: (m: string) => void,
): (device: string | null) => EngineCommand {
  const python = pythonOf(config);
  const modelDir = modelDirOf(config, python, info);
  info(`model ${modelDir}`);
  // Each engine sees only its own GPU (CUDA_VISIBLE_DEVICES; engineCommand).
  return (device) => engineCommand(config, python, modelDir, path.join(repoRoot, "engine"), device);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`kontext: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
