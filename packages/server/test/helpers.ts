// Builds the app the way main.ts does, in a temporary data dir, with a chosen engine command.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { type AppDeps, buildApp } from "../src/app.js";
import { type Config, defaultConfig } from "../src/config.js";
import type { EngineCommand } from "../src/engine/process.js";
import { Supervisor } from "../src/engine/supervisor.js";
import { ImageIngest } from "../src/images/ingest.js";
import { SqliteJobQueue } from "../src/jobs/queue.js";
import { JobStore } from "../src/jobs/store.js";
import { Metrics } from "../src/metrics.js";
import { FileStore } from "../src/storage/files.js";
import { waitFor } from "./support.js";

export * from "./support.js";

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "../../..");
export const FAKE_ENGINE = path.join(here, "fixtures/fake-engine.mjs");

export function fakeEngine(env: Record<string, string> = {}): (device: string | null) => EngineCommand {
  return () => ({ file: process.execPath, args: [FAKE_ENGINE], cwd: here, env: { ...process.env, ...env } });
}

/** The real engine on the tiny model (paths from test/global-setup.ts). */
export function realEngine(python: string, modelDir: string): (device: string | null) => EngineCommand {
  return () => ({
    file: python,
    args: ["-m", "kontext_engine", "serve", "--model-dir", modelDir, "--device", "cpu"],
    cwd: path.join(repoRoot, "engine"),
  });
}

/** The engine supervisor a test's config asks for, on `command` (the fake engine by default). */
export function testEngine(config: Config, command?: (device: string | null) => EngineCommand): Supervisor {
  return new Supervisor({
    devices: config.devices,
    command: command ?? fakeEngine(),
    readyTimeoutMs: config.engineReadyTimeoutS * 1000,
    restartDelayMs: config.engineRestartDelayMs,
  });
}

/** Input-image ingest with the config's limits, as main.ts builds it. */
export function testImages(files: FileStore, config: Config): ImageIngest {
  return new ImageIngest(files, {
    maxPixels: config.maxInputPixels,
    fetchAllow: config.fetchAllow,
    timeoutMs: config.fetchTimeoutMs,
    maxBytes: config.fetchMaxBytes,
    maxRedirects: config.fetchMaxRedirects,
  });
}

export interface Harness {
  app: ReturnType<typeof buildApp>;
  config: Config;
  store: JobStore;
  queue: SqliteJobQueue;
  engine: Supervisor;
  files: FileStore;
  dataDir: string;
  close(keepData?: boolean): Promise<void>;
}

export async function makeHarness(
  opts: {
    config?: Partial<Config>;
    command?: (device: string | null) => EngineCommand;
    dataDir?: string;
    waitReady?: boolean;
    webhookOptions?: AppDeps["webhookOptions"];
    /** A FileStore of the test's own (a double that fails writes, say). */
    files?: (dataDir: string) => FileStore;
  } = {},
): Promise<Harness> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(tmpdir(), "kontext-test-"));
  const config = defaultConfig({ dataDir, engineRestartDelayMs: 50, ...opts.config });
  const files = opts.files ? opts.files(dataDir) : new FileStore(dataDir);
  const store = new JobStore(files.databasePath);
  const metrics = new Metrics();
  const engine = testEngine(config, opts.command);
  const queue = new SqliteJobQueue(store, files, engine, metrics, {
    maxQueue: config.maxQueue,
  });
  const images = testImages(files, config);
  const app = buildApp({
    store,
    queue,
    engine,
    images,
    files,
    config,
    metrics,
    webhookOptions: opts.webhookOptions ?? {},
  });
  engine.start();
  await queue.start();
  if (opts.waitReady !== false)
    await waitFor(() => engine.status().every((s) => s.state === "idle"), 120_000);
  return {
    app,
    config,
    store,
    queue,
    engine,
    files,
    dataDir,
    async close(keepData = false) {
      queue.stop();
      await app.close();
      await engine.stop();
      await queue.settled();
      store.close();
      if (!keepData && !opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A small PNG as a data URI. */
export async function pngDataUri(width = 32, height = 24, color = { r: 200, g: 30, b: 30 }): Promise<string> {
  const buf = await sharp({ create: { width, height, channels: 3, background: color } })
    .png()
    .toBuffer();
  return `data:image/png;base64,${buf.toString("base64")}`;
}
