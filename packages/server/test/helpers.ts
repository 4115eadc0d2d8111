// Builds the app with compose() as main.ts does, in a temporary data dir, with a chosen engine command.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import sharp from "sharp";
import { type ComposeOptions, type Composition, compose } from "../src/compose.js";
import { type Config, defaultConfig } from "../src/config.js";
import type { EngineCommand } from "../src/engine/process.js";
import type { Supervisor } from "../src/engine/supervisor.js";
import type { SqliteJobQueue } from "../src/jobs/sqlite-queue.js";
import type { SqliteRecords } from "../src/jobs/sqlite-records.js";
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

export interface Harness {
  app: FastifyInstance;
  config: Config;
  store: SqliteRecords;
  queue: SqliteJobQueue;
  engine: Supervisor;
  files: FileStore;
  dataDir: string;
  /** What compose() built (the harness's fields are its parts). */
  composition: Composition;
  close(keepData?: boolean): Promise<void>;
}

export interface HarnessOptions {
  config?: Partial<Config>;
  command?: (device: string | null) => EngineCommand;
  dataDir?: string;
  waitReady?: boolean;
  webhookOptions?: ComposeOptions["webhookOptions"];
  /** A FileStore of the test's own (a double that fails writes, say). */
  files?: (dataDir: string) => FileStore;
  /** The built workbench, served at `/`. */
  workbenchDir?: string;
}

/** The app on the embedded SQLite queue, as main.ts composes it (compose.ts), on the fake engine by default. */
export async function makeHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(tmpdir(), "kontext-test-"));
  // the harness's data dir wins over a config's (a test passing a whole defaultConfig() has ./data in it)
  const config = defaultConfig({ engineRestartDelayMs: 50, ...opts.config, dataDir });
  const c = await compose(config, {
    engineCommand: opts.command ?? fakeEngine(),
    files: opts.files ? opts.files(dataDir) : new FileStore(dataDir),
    webhookOptions: opts.webhookOptions ?? {},
    workbenchDir: opts.workbenchDir,
  });
  const { app, sqliteQueue: queue, engine } = c;
  if (!app || !queue || !engine) throw new Error("compose built no SQLite app");
  await c.start();
  if (opts.waitReady !== false)
    await waitFor(() => engine.status().every((s) => s.state === "idle"), 120_000);
  return {
    app,
    config,
    store: c.store,
    queue,
    engine,
    files: c.files,
    dataDir,
    composition: c,
    async close(keepData = false) {
      await c.close();
      if (!keepData && !opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A small PNG as a data URI. */
/** A PNG of noise, `side` × `side`: stored as sent, about side × side × 3 bytes (1.1 MB for 600). */
export async function noisePngDataUri(seed: number, side = 600): Promise<string> {
  const png = await sharp({
    create: {
      width: side,
      height: side,
      channels: 3,
      background: { r: seed, g: 10, b: 10 },
      noise: { type: "gaussian", mean: 128, sigma: 60 },
    },
  })
    .png()
    .toBuffer();
  return `data:image/png;base64,${png.toString("base64")}`;
}

export async function pngDataUri(width = 32, height = 24, color = { r: 200, g: 30, b: 30 }): Promise<string> {
  const buf = await sharp({ create: { width, height, channels: 3, background: color } })
    .png()
    .toBuffer();
  return `data:image/png;base64,${buf.toString("base64")}`;
}

/**
 * A mask_image as a PNG data URI, width × height: white (change) where `change(x, y)`, black
 * (keep) elsewhere; by default the right half. `alpha`: an alpha-only mask instead, transparent
 * (change) there and opaque black elsewhere, as OpenAI's masks are.
 */
export async function maskDataUri(
  width: number,
  height: number,
  change: (x: number, y: number) => boolean = (x) => x >= width / 2,
  alpha = false,
): Promise<string> {
  const px = Buffer.alloc(width * height * (alpha ? 4 : 1));
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (alpha) px[i * 4 + 3] = change(x, y) ? 0 : 255;
      else px[i] = change(x, y) ? 255 : 0;
    }
  const png = await sharp(px, { raw: { width, height, channels: alpha ? 4 : 1 } })
    .png()
    .toBuffer();
  return `data:image/png;base64,${png.toString("base64")}`;
}
