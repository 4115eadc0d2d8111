// buildApp composes the HTTP server from its parts. It opens no port and spawns nothing:
// main.ts does that; tests build it with what they need and call inject().
import Fastify, { type FastifyInstance, type FastifyRequest, LogController } from "fastify";
import { registerAuth } from "./api/auth.js";
import { registerDocs } from "./api/docs.js";
import { registerEvents } from "./api/events.js";
import { registerGenerations } from "./api/generations.js";
import { registerHealth } from "./api/health.js";
import { registerHistory } from "./api/history.js";
import { registerModels } from "./api/models.js";
import { registerOpenAI } from "./api/openai.js";
import { registerResults } from "./api/results.js";
import { registerWorkbench } from "./api/workbench.js";
import { ApiKeys } from "./auth/keys.js";
import type { Config } from "./config.js";
import type { Engines } from "./engine/supervisor.js";
import { ApiError } from "./errors.js";
import { AddressPolicy } from "./images/address.js";
import type { ImageIngest } from "./images/ingest.js";
import { Idempotency } from "./jobs/idempotency.js";
import type { JobQueue } from "./jobs/job-queue.js";
import type { JobStore } from "./jobs/store.js";
import { Metrics } from "./metrics.js";
import { isRedisUnavailable } from "./redis/connection.js";
import type { FileStore } from "./storage/files.js";
import { Retention } from "./storage/retention.js";
import { SqliteOutbox, type WebhookOutbox } from "./webhooks/outbox.js";
import { type WebhookOptions, Webhooks } from "./webhooks/sender.js";

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

export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: deps.config.bodyLimitBytes,
    // One log line per request is costly: only at debug and trace.
    logController: new LogController({
      disableRequestLogging: !["debug", "trace"].includes(deps.config.logLevel),
    }),
    forceCloseConnections: true, // event streams stay open; closing the server ends them
    // Fastify's own schema validation is not used: the model schemas are checked in the
    // handlers so that errors name the field, the rule and the value (schema/validate.ts).
  });
  const { config, store } = deps;
  const ctx: AppContext = {
    ...deps,
    metrics: deps.metrics ?? new Metrics(),
    baseUrl: (req) => config.publicUrl?.replace(/\/$/, "") ?? `${req.protocol}://${req.host}`,
    keys: new ApiKeys(config, {
      submitsPerMinute: config.keySubmitsPerMinute,
      maxActiveJobs: config.keyMaxActiveJobs,
    }),
    idempotency: new Idempotency(deps.queue),
    webhooks: new Webhooks(deps.webhookOutbox ?? new SqliteOutbox(store, deps.queue), {
      secret: config.webhookSecret,
      policy: new AddressPolicy(config.fetchAllow),
      ...deps.webhookOptions,
    }),
    retention: new Retention(store, deps.files, {
      ttlHours: config.resultTtlHours,
      capBytes: config.storageCapMb * 1024 * 1024,
    }),
  };
  // Webhook deliveries and the retention sweep run while the app does (closed before the store).
  app.addHook("onReady", async () => {
    ctx.webhooks.start();
    ctx.retention.start();
  });
  app.addHook("onClose", async () => {
    ctx.webhooks.stop();
    await ctx.retention.stop();
  });

  app.removeContentTypeParser("text/plain"); // bodies are JSON; anything else is 415
  app.setErrorHandler((err, req, reply) => {
    const apiErr = toApiError(err, deps.config.bodyLimitBytes, req.headers["content-type"] ?? "none");
    if (apiErr.status >= 500) req.log.error({ err }, "request failed");
    ctx.metrics.errors.inc({ code: apiErr.code });
    void reply.code(apiErr.status).headers(apiErr.headers).send(apiErr.toBody());
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new ApiError("route_not_found", { method: req.method, url: req.url.split("?")[0] ?? "" });
    ctx.metrics.errors.inc({ code: e.code });
    void reply.code(e.status).send(e.toBody());
  });

  registerAuth(app, ctx);
  registerModels(app, ctx);
  registerGenerations(app, ctx);
  registerEvents(app, ctx);
  registerResults(app, ctx);
  registerHealth(app, ctx);
  registerDocs(app, ctx);
  registerHistory(app, ctx);
  registerOpenAI(app, ctx);
  if (deps.workbenchDir) registerWorkbench(app, deps.workbenchDir);
  return app;
}

function toApiError(err: unknown, bodyLimit: number, contentType: string): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  switch (e.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new ApiError("body_too_large", { limit: bodyLimit });
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new ApiError("unsupported_media_type", { contentType });
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new ApiError("invalid_json", { reason: "the body is empty" });
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new ApiError("invalid_json", { reason: e.message ?? "" });
  }
  if (err instanceof SyntaxError || (e.statusCode === 400 && /JSON/i.test(e.message ?? ""))) {
    return new ApiError("invalid_json", { reason: e.message ?? "" });
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
    return new ApiError("invalid_request", { detail: e.message ?? "bad request" });
  }
  if (isRedisUnavailable(err)) return new ApiError("queue_unavailable", { reason: e.message ?? "" });
  return new ApiError("internal", { reason: e.message ?? String(err) });
}
