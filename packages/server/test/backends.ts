// The app on either JobQueue backend, in one process, for the conformance suite: `sqlite` is
// helpers.ts's harness; `bullmq` is a gateway (BullMqJobQueue, RemoteEngines) and a worker
// (JobWorker with its own engine) sharing a real Redis, as `KONTEXT_ROLE=all` runs them.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll } from "vitest";
import { type AppDeps, buildApp } from "../src/app.js";
import { type Config, defaultConfig } from "../src/config.js";
import type { EngineCommand } from "../src/engine/process.js";
import { RemoteEngines } from "../src/engine/remote.js";
import type { Supervisor } from "../src/engine/supervisor.js";
import { BullMqJobQueue } from "../src/jobs/bullmq-queue.js";
import type { JobQueue } from "../src/jobs/job-queue.js";
import { RedisJobStore } from "../src/jobs/redis-store.js";
import { JobStore } from "../src/jobs/store.js";
import { JobWorker } from "../src/jobs/worker.js";
import { Metrics } from "../src/metrics.js";
import { connectRedis, type Redis } from "../src/redis/connection.js";
import { FileStore } from "../src/storage/files.js";
import { RedisOutbox, SqliteOutbox, type WebhookOutbox } from "../src/webhooks/outbox.js";
import { makeHarness, testEngine, testImages, waitFor } from "./helpers.js";
import { type RedisServer, startRedis } from "./redis.js";

export type BackendName = "sqlite" | "bullmq";
export const BACKENDS: readonly BackendName[] = ["sqlite", "bullmq"];

/**
 * One Redis for the test file (started before its tests, stopped after) and `define` called once
 * per backend with a maker of harnesses on it: the two-backend suites' shared frame.
 */
export function forEachBackend(
  define: (backend: BackendName, make: (opts?: HarnessOptions) => Promise<QueueHarness>) => void,
): void {
  let redis: RedisServer | null = null;
  beforeAll(async () => {
    redis = await startRedis();
  }, 180_000);
  afterAll(async () => redis?.stop());
  for (const backend of BACKENDS)
    define(backend, (opts = {}) => makeQueueHarness(backend, redis?.url ?? null, opts));
}

export interface QueueHarness {
  app: ReturnType<typeof buildApp>;
  queue: JobQueue;
  /** The engines that run this harness's jobs (the worker's, with Redis). */
  engine: Supervisor;
  config: Config;
  /** Where this harness's inputs and results are stored. */
  files: FileStore;
  /** Where this harness's webhook deliveries wait (SQLite rows, or Redis). */
  outbox: WebhookOutbox;
  close(): Promise<void>;
}

export interface HarnessOptions {
  config?: Partial<Config>;
  command?: (device: string | null) => EngineCommand;
  /** The bullmq harness's file store (default: the data dir). */
  files?: (dataDir: string) => FileStore;
  webhookOptions?: AppDeps["webhookOptions"];
}

export async function makeQueueHarness(
  backend: BackendName,
  redisUrl: string | null,
  opts: HarnessOptions = {},
): Promise<QueueHarness> {
  if (backend === "sqlite") {
    const h = await makeHarness(opts);
    return Object.assign(h, { outbox: new SqliteOutbox(h.store, h.queue) });
  }
  if (!redisUrl) throw new Error("the bullmq backend needs a Redis");
  return makeBullMqHarness(redisUrl, opts);
}

async function makeBullMqHarness(redisUrl: string, opts: HarnessOptions): Promise<QueueHarness> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "kontext-test-"));
  const config = defaultConfig({
    dataDir,
    redisUrl,
    engineRestartDelayMs: 50,
    jobLockS: 2,
    ...opts.config,
  });
  const conns: Redis[] = [];
  const connect = (kind: "gateway" | "worker") => {
    const r = connectRedis(redisUrl, { kind });
    conns.push(r);
    return r;
  };
  await connect("gateway").flushall(); // each harness starts from an empty Redis
  const files = opts.files ? opts.files(dataDir) : new FileStore(dataDir);
  const metrics = new Metrics();
  const engine = testEngine(config, opts.command);
  const workerRedis = connect("worker");
  const worker = new JobWorker(
    new RedisJobStore(workerRedis),
    workerRedis,
    connect("worker"),
    engine,
    files,
    metrics,
    { name: "test-worker", lockMs: config.jobLockS * 1000 },
  );
  engine.start();
  await worker.start();
  const store = new RedisJobStore(connect("gateway"));
  const queue = new BullMqJobQueue(store, connect("gateway"), connect("worker"), {
    maxQueue: config.maxQueue,
    files,
  });
  await queue.start();
  const remote = await new RemoteEngines(store).start(100);
  const sqlite = new JobStore(path.join(dataDir, "kontext.db"));
  const images = testImages(files, config);
  const outbox = new RedisOutbox(store, queue, 100);
  const app = buildApp({
    store: sqlite,
    queue,
    engine: remote,
    images,
    files,
    config,
    metrics,
    webhookOutbox: outbox,
    webhookOptions: opts.webhookOptions ?? {},
  });
  await waitFor(() => remote.status().some((s) => s.state === "idle"), 60_000, "a worker's engine ready");
  return {
    app,
    queue,
    engine,
    config,
    files,
    outbox,
    async close() {
      queue.stop();
      await app.close();
      await worker.stop(0);
      await queue.close();
      await remote.stop();
      for (const c of conns) c.disconnect();
      sqlite.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
