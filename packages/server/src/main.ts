// The composition root: reads the config, opens the stores, starts the engines and listens.
// The only module that opens a port or spawns processes. KONTEXT_ROLE picks what this process is:
// `all` (HTTP and engines), `gateway` (HTTP) or `worker` (engines pulling jobs from Redis).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildApp } from "./app.js";
import { authRequired } from "./auth/keys.js";
import { type Config, ConfigError, loadConfig } from "./config.js";
import { engineCommand } from "./engine/command.js";
import { RemoteEngines } from "./engine/remote.js";
import { type Engines, Supervisor } from "./engine/supervisor.js";
import { ImageIngest } from "./images/ingest.js";
import { BullMqJobQueue } from "./jobs/bullmq-queue.js";
import type { JobQueue } from "./jobs/job-queue.js";
import { SqliteJobQueue } from "./jobs/queue.js";
import { RedisJobStore } from "./jobs/redis-store.js";
import { JobStore } from "./jobs/store.js";
import { JobWorker } from "./jobs/worker.js";
import { Metrics } from "./metrics.js";
import { connectRedis, redact } from "./redis/connection.js";
import { FileStore } from "./storage/files.js";
import { ObjectStore } from "./storage/objects.js";
import { RedisOutbox, type WebhookOutbox } from "./webhooks/outbox.js";

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
    if (config.role !== "all" && !config.redisUrl) {
      throw new ConfigError(
        `KONTEXT_ROLE=${config.role} needs KONTEXT_REDIS_URL: gateways and workers meet in Redis (docs/deploy.md)`,
      );
    }
    if (config.s3Bucket && !config.redisUrl) {
      throw new ConfigError(
        "KONTEXT_S3_BUCKET needs KONTEXT_REDIS_URL: the object store is where scaled-out gateways and workers share files; one machine keeps them in KONTEXT_DATA_DIR",
      );
    }
    if (config.s3Bucket && config.sharedDir) {
      throw new ConfigError("set KONTEXT_S3_BUCKET or KONTEXT_SHARED_DIR, not both: files live in one place");
    }
    if (config.role !== "worker") authRequired(config); // refuses to start exposed without keys
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kontext: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const info = (m: string) => process.stderr.write(`kontext: ${m}\n`);
  const log = (_level: string, msg: string) => info(msg);
  // Inputs and results in the bucket or on the shared path when there is one; the engines' raw
  // outputs stay local.
  const objects = config.s3Bucket
    ? new ObjectStore({
        bucket: config.s3Bucket,
        endpoint: config.s3Endpoint,
        region: config.s3Region,
        prefix: config.s3Prefix ?? "",
      })
    : undefined;
  if (objects) {
    try {
      await objects.check();
    } catch (err) {
      process.stderr.write(`kontext: ${(err as Error).message}\n`);
      process.exit(1);
    }
  }
  const files = new FileStore(objects ? config.dataDir : (config.sharedDir ?? config.dataDir), {
    tmpDir: path.join(config.dataDir, "tmp"),
    objects,
  });
  const metrics = new Metrics();
  const serves = config.role !== "worker";
  const runsEngines = config.role !== "gateway";
  const engine = runsEngines ? localEngines(config, info) : null;

  // The queue: embedded SQLite, or BullMQ on Redis (then this process is a gateway, a worker or both).
  const store = new JobStore(path.join(config.dataDir, "kontext.db")); // webhook outbox; all jobs without Redis
  let queue: JobQueue | null = null; // what the HTTP API runs on (none in a worker)
  let engines: Engines | null = null;
  let worker: JobWorker | null = null;
  let webhookOutbox: WebhookOutbox | undefined; // with Redis: deliveries any gateway may send
  const closers: Array<() => Promise<unknown>> = [async () => objects?.close()];
  if (!config.redisUrl) {
    const sqlite = new SqliteJobQueue(store, files, engine as Supervisor, metrics, {
      maxQueue: config.maxQueue,
      log,
    });
    queue = sqlite;
    closers.push(() => sqlite.settled()); // results still being stored land before the store closes
    engines = engine as Supervisor;
    (engine as Supervisor).start();
    await sqlite.start();
  } else {
    const url = config.redisUrl;
    const connect = (kind: "gateway" | "worker") => {
      const r = connectRedis(url, { kind, log });
      closers.push(() => r.quit().catch(() => r.disconnect()));
      return r;
    };
    info(`queue: BullMQ on ${redact(url)} (role ${config.role})`);
    if (engine) {
      const workerRedis = connect("worker");
      worker = new JobWorker(
        new RedisJobStore(workerRedis),
        workerRedis,
        connect("worker"),
        engine,
        files,
        metrics,
        {
          name: `${hostname()}:${process.pid}`,
          lockMs: config.jobLockS * 1000,
          log,
        },
      );
      engine.start();
      await worker.start();
    }
    if (serves) {
      const store = new RedisJobStore(connect("gateway"));
      const bull = new BullMqJobQueue(store, connect("gateway"), connect("worker"), {
        maxQueue: config.maxQueue,
        log,
        files,
      });
      closers.unshift(() => bull.close());
      const remote = new RemoteEngines(store);
      closers.unshift(() => remote.stop());
      await bull.start();
      await remote.start();
      queue = bull;
      engines = remote;
      webhookOutbox = new RedisOutbox(store, bull);
    }
  }

  let app: ReturnType<typeof buildApp> | null = null;
  if (queue && engines) {
    const images = new ImageIngest(files, {
      maxPixels: config.maxInputPixels,
      fetchAllow: config.fetchAllow,
      timeoutMs: config.fetchTimeoutMs,
      maxBytes: config.fetchMaxBytes,
      maxRedirects: config.fetchMaxRedirects,
    });
    app = buildApp({
      store,
      queue,
      engine: engines,
      images,
      files,
      config,
      metrics,
      webhookOutbox,
      logger: { level: config.logLevel },
      workbenchDir: path.join(repoRoot, "packages/workbench/dist"),
    });
    await app.listen({ host: config.host, port: config.port });
    info(
      `serving on http://${config.host}:${config.port} (data in ${config.dataDir}, files in ${files.location})`,
    );
  } else info(`worker ${hostname()}:${process.pid}: files in ${files.location}`);

  // Graceful stop: no new generations (503, /healthz 503), running ones get the grace period to
  // finish (their clients, webhooks and streams are still served), then the engines stop and
  // whatever did not finish is queued again (for the next start, or for another worker).
  // A second signal stops at once.
  let stopping = false;
  const running = () =>
    worker ? worker.runningCount() : queue instanceof SqliteJobQueue ? queue.runningCount() : 0;
  const stop = async (signal: string) => {
    if (stopping) {
      info(`${signal} again: stopping now`);
      await engine?.stop();
      process.exit(1);
    }
    stopping = true;
    queue?.stop();
    info(
      `${signal}: stopping; ${running()} running generation(s) get up to ${config.shutdownGraceS} s to finish`,
    );
    const graceMs = config.shutdownGraceS * 1000;
    if (worker) await worker.stop(graceMs);
    else if (engine) {
      const end = Date.now() + graceMs;
      while (running() > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      if (running() > 0)
        info(`grace period over: ${running()} generation(s) will run again after the restart`);
      await engine.stop(); // a job still running ends as shutting_down and is requeued
    }
    await new Promise((r) => setTimeout(r, 200)); // let final events reach open streams
    await app?.close();
    for (const close of closers) await close();
    store.close();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

/** The engines of this machine: one per configured device, on the configured or tiny model. */
function localEngines(config: Config, info: (m: string) => void): Supervisor {
  const python = pythonOf(config);
  const modelDir = modelDirOf(config, python, info);
  info(`model ${modelDir}`);
  return new Supervisor({
    devices: config.devices,
    readyTimeoutMs: config.engineReadyTimeoutS * 1000,
    restartDelayMs: config.engineRestartDelayMs,
    log: (_level, msg) => info(msg),
    // Each engine sees only its own GPU (CUDA_VISIBLE_DEVICES; engineCommand).
    command: (device) => engineCommand(config, python, modelDir, path.join(repoRoot, "engine"), device),
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`kontext: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
