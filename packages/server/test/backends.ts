// The app on either JobQueue backend, in one process, for the conformance suite: `sqlite` is
// helpers.ts's harness; `bullmq` is a gateway (BullMqJobQueue, RemoteEngines) and a worker
// (JobWorker with its own engine) sharing a real Redis, as `KONTEXT_ROLE=all` runs them; both
// composed by compose.ts, as main.ts composes them.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll } from "vitest";
import { type ComposeOptions, compose } from "../src/compose.js";
import { type Config, defaultConfig } from "../src/config.js";
import type { EngineCommand } from "../src/engine/process.js";
import type { Supervisor } from "../src/engine/supervisor.js";
import type { JobQueue } from "../src/jobs/job-queue.js";
import { connectRedis } from "../src/redis/connection.js";
import { FileStore } from "../src/storage/files.js";
import type { Retention } from "../src/storage/retention.js";
import type { WebhookOutbox } from "../src/webhooks/outbox.js";
import { fakeEngine, makeHarness, waitFor } from "./helpers.js";
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
  app: FastifyInstance;
  queue: JobQueue;
  /** The engines that run this harness's jobs (the worker's, with Redis). */
  engine: Supervisor;
  config: Config;
  /** Where this harness's inputs and results are stored. */
  files: FileStore;
  /** Where this harness's webhook deliveries wait (SQLite rows, or Redis). */
  outbox: WebhookOutbox;
  /** Retention and the disk cap over this backend's records. */
  retention: Retention;
  close(): Promise<void>;
}

export interface HarnessOptions {
  config?: Partial<Config>;
  command?: (device: string | null) => EngineCommand;
  /** The bullmq harness's file store (default: the data dir). */
  files?: (dataDir: string) => FileStore;
  webhookOptions?: ComposeOptions["webhookOptions"];
}

export async function makeQueueHarness(
  backend: BackendName,
  redisUrl: string | null,
  opts: HarnessOptions = {},
): Promise<QueueHarness> {
  if (backend === "sqlite") {
    const h = await makeHarness(opts);
    const { webhookOutbox: outbox, retention } = h.composition;
    if (!outbox || !retention) throw new Error("compose built no webhook outbox or retention");
    return Object.assign(h, { outbox, retention });
  }
  if (!redisUrl) throw new Error("the bullmq backend needs a Redis");
  return makeBullMqHarness(redisUrl, opts);
}

/** KONTEXT_ROLE=all on Redis, composed as main.ts composes it (compose.ts), on the fake engine by default. */
async function makeBullMqHarness(redisUrl: string, opts: HarnessOptions): Promise<QueueHarness> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "kontext-test-"));
  const config = defaultConfig({
    redisUrl,
    engineRestartDelayMs: 50,
    jobLockS: 2,
    ...opts.config,
    dataDir, // the harness's, whatever the config says
  });
  const flush = connectRedis(redisUrl, { kind: "gateway" });
  await flush.flushall(); // each harness starts from an empty Redis
  flush.disconnect();
  const c = await compose(config, {
    engineCommand: opts.command ?? fakeEngine(),
    files: opts.files ? opts.files(dataDir) : new FileStore(dataDir),
    webhookOptions: opts.webhookOptions ?? {},
    workerName: "test-worker",
    remoteRefreshMs: 100,
    outboxPollMs: 100,
  });
  const { app, queue, engine, engines: remote, webhookOutbox: outbox, retention } = c;
  if (!app || !queue || !engine || !remote || !outbox || !retention)
    throw new Error("compose built no gateway and worker");
  await c.start();
  await waitFor(() => remote.status().some((s) => s.state === "idle"), 60_000, "a worker's engine ready");
  return {
    app,
    queue,
    engine,
    config,
    files: c.files,
    outbox,
    retention,
    async close() {
      await c.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
