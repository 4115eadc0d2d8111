// AppContext: what every route is given. Its own module, below the routes, so that api/*.ts
// import it without importing app.ts, which imports them (README: gateway layers).
import type { FastifyRequest } from "fastify";
import type { ApiKeys } from "./auth/keys.js";
import type { Config } from "./config.js";
import type { Engines } from "./engine/supervisor.js";
import type { ImageIngest } from "./images/ingest.js";
import type { Idempotency } from "./jobs/idempotency.js";
import type { JobQueue } from "./jobs/job-queue.js";
import type { JobStore } from "./jobs/store.js";
import type { Metrics } from "./metrics.js";
import type { FileStore } from "./storage/files.js";
import type { Retention } from "./storage/retention.js";
import type { WebhookOutbox } from "./webhooks/outbox.js";
import type { WebhookOptions, Webhooks } from "./webhooks/sender.js";

export interface AppDeps {
  store: JobStore;
  queue: JobQueue;
  engine: Engines;
  images: ImageIngest;
  files: FileStore;
  config: Config;
  metrics?: Metrics;
  logger?: boolean | { level: string };
  /** The built workbench (packages/workbench/dist), served at `/`; left out, `/` is not served. */
  workbenchDir?: string;
  /** Webhook delivery tuning (tests shorten the retry schedule). */
  webhookOptions?: Partial<WebhookOptions>;
  /** Where webhook deliveries wait: Redis when scaled out; left out, rows in `store`. */
  webhookOutbox?: WebhookOutbox;
}

export interface AppContext
  extends Required<Omit<AppDeps, "logger" | "workbenchDir" | "webhookOptions" | "webhookOutbox">> {
  /** The scheme, host and port result URLs start with. */
  baseUrl(req: FastifyRequest): string;
  keys: ApiKeys;
  idempotency: Idempotency;
  webhooks: Webhooks;
  retention: Retention;
}
