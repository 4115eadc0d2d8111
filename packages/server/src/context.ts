// AppContext: what every route is given. Its own module, below the routes, so that api/*.ts
// import it without importing app.ts, which imports them (README: gateway layers).
import type { FastifyRequest } from "fastify";
import type { ApiKeys } from "./auth/keys.js";
import type { Config } from "./config.js";
import type { LoraCatalogue } from "./engine/loras.js";
import type { Engines } from "./engine/supervisor.js";
import type { ImageIngest } from "./images/ingest.js";
import type { Idempotency } from "./jobs/idempotency.js";
import type { JobQueue } from "./jobs/job-queue.js";
import type { SqliteRecords } from "./jobs/sqlite-records.js";
import type { Metrics } from "./metrics.js";
import type { FileStore } from "./storage/files.js";
import type { Retention } from "./storage/retention.js";
import type { Webhooks } from "./webhooks/sender.js";

/** What buildApp is given: every service built (compose.ts), plus how to log and what to serve at `/`. */
export interface AppDeps {
  store: SqliteRecords;
  queue: JobQueue;
  engine: Engines;
  images: ImageIngest;
  files: FileStore;
  config: Config;
  metrics: Metrics;
  keys: ApiKeys;
  idempotency: Idempotency;
  /** Webhook deliveries (from the SQLite rows or Redis: compose.ts picks the outbox). */
  webhooks: Webhooks;
  retention: Retention;
  /** KONTEXT_LORA_DIR's adapters: the listing and the check of a request's loras. */
  loras: LoraCatalogue;
  logger?: boolean | { level: string };
  /** The built workbench (packages/workbench/dist), served at `/`; left out, `/` is not served. */
  workbenchDir?: string;
}

export interface AppContext extends Omit<AppDeps, "logger" | "workbenchDir"> {
  /** The scheme, host and port result URLs start with. */
  baseUrl(req: FastifyRequest): string;
}
