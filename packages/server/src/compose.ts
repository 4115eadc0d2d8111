// The composition root: every service of a process built from the parsed config, in one place,
// for main.ts and for the tests alike. It opens no port and spawns nothing by itself: start()
// starts the engines and backends, main.ts (or a test, on its own port) listens with `app` and
// `metricsListener`, and drain() and close() take it all down again.
import type { Server } from "node:http";
import { hostname } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { buildApp } from "./app.js";
import { ApiKeys, authRequired } from "./auth/keys.js";
import { type Config, ConfigError } from "./config.js";
import { LoraCatalogue } from "./engine/loras.js";
import type { EngineCommand } from "./engine/process.js";
import { RemoteEngines } from "./engine/remote.js";
import { type Engines, Supervisor } from "./engine/supervisor.js";
import { AddressPolicy } from "./images/address.js";
import { ImageIngest } from "./images/ingest.js";
import { BullMqJobQueue } from "./jobs/bullmq-queue.js";
import { Idempotency } from "./jobs/idempotency.js";
import type { JobQueue } from "./jobs/job-queue.js";
import { RedisRecords } from "./jobs/redis-records.js";
import { SqliteJobQueue } from "./jobs/sqlite-queue.js";
import { SqliteRecords } from "./jobs/sqlite-records.js";
import { JobWorker } from "./jobs/worker.js";
import { Metrics } from "./metrics.js";
import { metricsListener } from "./metrics-listener.js";
import { connectRedis, type Redis, redact } from "./redis/connection.js";
import { FileStore } from "./storage/files.js";
import { ObjectStore } from "./storage/objects.js";
import { Retention, type RetentionRecords } from "./storage/retention.js";
import { RedisOutbox, SqliteOutbox, type WebhookOutbox } from "./webhooks/outbox.js";
import { type WebhookOptions, Webhooks } from "./webhooks/sender.js";

type Log = (level: "info" | "warn" | "error", msg: string) => void;

export interface ComposeOptions {
  /** How an engine is started for a device (main.ts: the Python engine on the model; tests: a fake). Needed unless the role is `gateway`. */
  engineCommand?: (device: string | null) => EngineCommand;
  /** The file store (tests: a double); left out, the config's (bucket, shared path or DATA_DIR). */
  files?: FileStore;
  log?: Log;
  /** Fastify's logger (main.ts: the config's level); left out, none. */
  logger?: boolean | { level: string };
  /** The built workbench, served at `/`; left out, `/` is not served. */
  workbenchDir?: string;
  /** Webhook delivery tuning (tests shorten the retry schedule). */
  webhookOptions?: Partial<WebhookOptions>;
  /** A worker's name in /healthz and the logs (default host:pid). */
  workerName?: string;
  /** How often a gateway reads the workers' heartbeats (RemoteEngines; default 2 s). */
  remoteRefreshMs?: number;
  /** How often a gateway polls Redis for webhook deliveries due (default 1 s). */
  outboxPollMs?: number;
}

/** Everything a process is made of. Fields a role has no use for are null. */
export interface Composition {
  config: Config;
  files: FileStore;
  metrics: Metrics;
  /** SQLite: every generation without Redis; with Redis, what the gateway keeps of its own. */
  store: SqliteRecords;
  /** The queue the HTTP API runs on: SQLite, or BullMQ on Redis (null in a worker). */
  queue: JobQueue | null;
  /** The embedded SQLite queue (queue itself, when there is no Redis). */
  sqliteQueue: SqliteJobQueue | null;
  /** This machine's engines (null in a gateway). */
  engine: Supervisor | null;
  /** The engines as the API sees them: the local ones, or the workers' in Redis (null in a worker). */
  engines: Engines | null;
  /** With Redis and engines here: what pulls jobs from Redis and runs them. */
  worker: JobWorker | null;
  /** Where webhook deliveries wait (null in a worker). */
  webhookOutbox: WebhookOutbox | null;
  /** The HTTP API, not listening (null in a worker). */
  app: FastifyInstance | null;
  /** Retention and the disk cap over the queue backend's records (null in a worker; runs with the app). */
  retention: Retention | null;
  /** A worker's /metrics and /healthz, not listening (null unless role `worker` and KONTEXT_METRICS_PORT is not 0). */
  metricsListener: Server | null;
  /** Starts the engines and the backends; opens no port. */
  start(): Promise<void>;
  /** Generations running on this process's engines. */
  runningCount(): number;
  /**
   * No new generations (503, /healthz 503); running ones get `graceMs` to finish, then the engines
   * stop and whatever did not finish is queued again. Resolves once the engines are stopped.
   */
  drain(graceMs: number): Promise<void>;
  /** Closes the app, the listener, the backends, the connections and the stores (drains with no grace first unless drained). */
  close(): Promise<void>;
}

/** The settings that only make sense together; a ConfigError says which. */
export function checkConfig(config: Config): void {
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
}

/**
 * Builds every service of the process `config` describes. Throws ConfigError for settings that do
 * not go together, and ObjectStoreError when the bucket cannot be reached.
 */
export async function compose(config: Config, opts: ComposeOptions = {}): Promise<Composition> {
  checkConfig(config);
  const log: Log = opts.log ?? (() => {});
  const serves = config.role !== "worker";
  const runsEngines = config.role !== "gateway";
  // Each step that holds something pushes how to let it go; close() runs them in order.
  const closers: Array<() => Promise<unknown>> = [];

  // Inputs and results in the bucket or on the shared path when there is one; the engines' raw
  // outputs stay local.
  let files = opts.files;
  if (!files) {
    const objects = config.s3Bucket
      ? new ObjectStore({
          bucket: config.s3Bucket,
          endpoint: config.s3Endpoint,
          region: config.s3Region,
          prefix: config.s3Prefix ?? "",
        })
      : undefined;
    if (objects) {
      await objects.check();
      closers.push(async () => objects.close());
    }
    files = new FileStore(objects ? config.dataDir : (config.sharedDir ?? config.dataDir), {
      tmpDir: path.join(config.dataDir, "tmp"),
      objects,
    });
  }
  const metrics = new Metrics();
  let engine: Supervisor | null = null;
  if (runsEngines) {
    if (!opts.engineCommand)
      throw new Error(`compose: KONTEXT_ROLE=${config.role} runs engines: give engineCommand`);
    engine = new Supervisor({
      devices: config.devices,
      command: opts.engineCommand,
      readyTimeoutMs: config.engineReadyTimeoutS * 1000,
      restartDelayMs: config.engineRestartDelayMs,
      log,
    });
  }

  // The queue: embedded SQLite, or BullMQ on Redis (then this process is a gateway, a worker or both).
  const store = new SqliteRecords(path.join(config.dataDir, "kontext.db")); // webhook outbox; all jobs without Redis
  let queue: JobQueue | null = null;
  let sqliteQueue: SqliteJobQueue | null = null;
  let engines: Engines | null = null;
  let worker: JobWorker | null = null;
  let bull: BullMqJobQueue | null = null;
  let remote: RemoteEngines | null = null;
  let webhookOutbox: WebhookOutbox | null = null;
  let records: RetentionRecords = store; // what retention sweeps: the queue backend's records
  if (!config.redisUrl) {
    if (!engine) throw new Error("compose: the SQLite queue needs engines");
    const sqlite = new SqliteJobQueue(store, files, engine, metrics, { maxQueue: config.maxQueue, log });
    closers.push(() => sqlite.settled()); // results still being stored land before the store closes
    queue = sqliteQueue = sqlite;
    engines = engine;
    webhookOutbox = new SqliteOutbox(store, sqlite);
  } else {
    const url = config.redisUrl;
    const connect = (kind: "gateway" | "worker"): Redis => {
      const r = connectRedis(url, { kind, log });
      closers.push(() => r.quit().catch(() => r.disconnect()));
      return r;
    };
    log("info", `queue: BullMQ on ${redact(url)} (role ${config.role})`);
    if (engine) {
      const workerRedis = connect("worker");
      worker = new JobWorker(
        new RedisRecords(workerRedis),
        workerRedis,
        connect("worker"),
        engine,
        files,
        metrics,
        {
          name: opts.workerName ?? `${hostname()}:${process.pid}`,
          lockMs: config.jobLockS * 1000,
          log,
        },
      );
    }
    if (serves) {
      const redisStore = new RedisRecords(connect("gateway"));
      const b = new BullMqJobQueue(redisStore, connect("gateway"), connect("worker"), {
        maxQueue: config.maxQueue,
        log,
        files,
        metrics,
      });
      records = redisStore;
      const r = new RemoteEngines(redisStore);
      closers.unshift(
        () => r.stop(),
        () => b.close(),
      );
      bull = b;
      remote = r;
      queue = b;
      engines = r;
      webhookOutbox = new RedisOutbox(redisStore, b, opts.outboxPollMs);
    }
  }

  let app: FastifyInstance | null = null;
  let retention: Retention | null = null;
  if (queue && engines && webhookOutbox) {
    retention = new Retention(records, files, {
      ttlHours: config.resultTtlHours,
      capBytes: config.storageCapMb * 1024 * 1024,
    });
    app = buildApp({
      store,
      queue,
      engine: engines,
      images: new ImageIngest(files, {
        maxPixels: config.maxInputPixels,
        fetchAllow: config.fetchAllow,
        timeoutMs: config.fetchTimeoutMs,
        maxBytes: config.fetchMaxBytes,
        maxRedirects: config.fetchMaxRedirects,
      }),
      files,
      config,
      metrics,
      keys: new ApiKeys(config, {
        submitsPerMinute: config.keySubmitsPerMinute,
        maxActiveJobs: config.keyMaxActiveJobs,
      }),
      idempotency: new Idempotency(queue),
      webhooks: new Webhooks(webhookOutbox, {
        secret: config.webhookSecret,
        policy: new AddressPolicy(config.fetchAllow),
        ...opts.webhookOptions,
      }),
      retention,
      loras: new LoraCatalogue(config.loraDir, opts.engineCommand ?? null),
      logger: opts.logger,
      workbenchDir: opts.workbenchDir,
    });
  }

  let stopping = false;
  const listener =
    !serves && engine && config.metricsPort !== 0
      ? metricsListener({ metrics, engines: engine, accepting: () => !stopping })
      : null;

  const runningCount = () => worker?.runningCount() ?? sqliteQueue?.runningCount() ?? 0;
  let drained: Promise<void> | null = null;
  const drain = (graceMs: number): Promise<void> => {
    stopping = true;
    drained ??= (async () => {
      queue?.stop();
      if (worker) await worker.stop(graceMs);
      else if (engine) {
        const end = Date.now() + graceMs;
        while (runningCount() > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
        if (runningCount() > 0)
          log("info", `grace period over: ${runningCount()} generation(s) will run again after the restart`);
        await engine.stop(); // a job still running ends as shutting_down and is requeued
      }
    })();
    return drained;
  };

  return {
    config,
    files,
    metrics,
    store,
    queue,
    sqliteQueue,
    engine,
    engines,
    worker,
    webhookOutbox,
    app,
    retention,
    metricsListener: listener,
    async start() {
      engine?.start();
      if (sqliteQueue) await sqliteQueue.start();
      if (worker) await worker.start();
      if (bull) await bull.start();
      if (remote) await remote.start(opts.remoteRefreshMs);
    },
    runningCount,
    drain,
    async close() {
      await drain(0);
      await app?.close();
      if (listener?.listening) await new Promise((r) => listener.close(r));
      for (const close of closers) await close();
      store.close();
    },
  };
}
