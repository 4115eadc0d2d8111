// The composition root: reads the config, opens the stores, starts the engines and listens.
// The only module that opens a port or spawns processes.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildApp } from "./app.js";
import { authRequired } from "./auth/keys.js";
import { type Config, ConfigError, loadConfig } from "./config.js";
import { Supervisor } from "./engine/supervisor.js";
import { ImageIngest } from "./images/ingest.js";
import { JobQueue } from "./jobs/queue.js";
import { JobStore } from "./jobs/store.js";
import { Metrics } from "./metrics.js";
import { FileStore } from "./storage/files.js";

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
  let config: Config;
  try {
    config = loadConfig();
    authRequired(config); // refuses to start exposed without keys
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kontext: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const info = (m: string) => process.stderr.write(`kontext: ${m}\n`);
  const files = new FileStore(config.dataDir);
  const store = new JobStore(files.databasePath);
  const metrics = new Metrics();
  const python = pythonOf(config);
  const modelDir = modelDirOf(config, python, info);
  const engine = new Supervisor({
    devices: config.devices,
    readyTimeoutMs: config.engineReadyTimeoutS * 1000,
    restartDelayMs: config.engineRestartDelayMs,
    log: (_level, msg) => info(msg),
    command: (device) => {
      const args = ["-m", "kontext_engine", "serve", "--model-dir", modelDir];
      if (device) args.push("--device", device);
      if (!config.safetyChecker) args.push("--no-safety-checker");
      else if (config.safetyCheckerDir) args.push("--safety-checker-dir", config.safetyCheckerDir);
      args.push("--precision", config.precision, "--warmup-buckets", config.warmupBuckets);
      if (config.compile)
        args.push("--compile", "--compile-cache", path.join(config.dataDir, "compile-cache"));
      if (config.lowMemory) args.push("--low-memory");
      return { file: python, args, cwd: path.join(repoRoot, "engine") };
    },
  });
  const queue = new JobQueue(store, files, engine, metrics, {
    maxQueue: config.maxQueue,
    log: (_level, msg) => info(msg),
  });
  const images = new ImageIngest(files, {
    maxPixels: config.maxInputPixels,
    fetchAllow: config.fetchAllow,
    timeoutMs: config.fetchTimeoutMs,
    maxBytes: config.fetchMaxBytes,
    maxRedirects: config.fetchMaxRedirects,
  });
  const app = buildApp({
    store,
    queue,
    engine,
    images,
    files,
    config,
    metrics,
    logger: { level: config.logLevel },
    workbenchDir: path.join(repoRoot, "packages/workbench/dist"),
  });
  engine.start();
  queue.start();
  await app.listen({ host: config.host, port: config.port });
  info(`serving on http://${config.host}:${config.port} (data in ${config.dataDir}, model ${modelDir})`);

  // Graceful stop: no new generations (503, /healthz 503), running ones get the grace period to
  // finish (their clients, webhooks and streams are still served), then the engines stop and
  // whatever did not finish is queued again for the next start. A second signal stops at once.
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      info(`${signal} again: stopping now`);
      await engine.stop();
      process.exit(1);
    }
    stopping = true;
    queue.stop();
    const running = queue.runningCount();
    info(
      `${signal}: stopping; ${running} running generation(s) get up to ${config.shutdownGraceS} s to finish`,
    );
    const end = Date.now() + config.shutdownGraceS * 1000;
    while (queue.runningCount() > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    if (queue.runningCount() > 0)
      info(`grace period over: ${queue.runningCount()} generation(s) will run again after the restart`);
    await engine.stop(); // a job still running ends as shutting_down and is requeued
    await new Promise((r) => setTimeout(r, 200)); // let final events reach open streams
    await app.close();
    store.close();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`kontext: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
