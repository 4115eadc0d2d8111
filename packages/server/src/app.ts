// buildApp puts the HTTP server together from services already built (compose.ts builds them).
// It opens no port and spawns nothing: main.ts listens; tests call inject() or listen on their own port.
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from "fastify";
import { registerAuth } from "./api/auth.js";
import { registerDocs } from "./api/docs.js";
import { registerEvents } from "./api/events.js";
import { registerGenerations } from "./api/generations.js";
import { registerHealth } from "./api/health.js";
import { registerHistory } from "./api/history.js";
import { registerModels } from "./api/models.js";
import { openAIError, registerOpenAI } from "./api/openai.js";
import { registerOrigin } from "./api/origin.js";
import { registerResults } from "./api/results.js";
import { registerWorkbench } from "./api/workbench.js";
import type { AppContext, AppDeps } from "./context.js";
import { ApiError } from "./errors.js";
import { isRedisUnavailable } from "./redis/connection.js";

export type { AppContext, AppDeps } from "./context.js";

export function buildApp(deps: AppDeps): FastifyInstance {
  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: deps.config.bodyLimitBytes,
    // One log line per request is costly: only at debug and trace.
    logController: new LogController({
      disableRequestLogging: !["debug", "trace"].includes(deps.config.logLevel),
    }),
    forceCloseConnections: true, // event streams stay open; closing the server ends them
    // Fastify's own refusals (a malformed %-escape, an over-long path parameter) and requests the
    // HTTP parser refuses answer in the error envelope too.
    frameworkErrors: (err, req, reply) => sendError(err, req, reply, true),
    clientErrorHandler: (err, socket) => clientError(err, socket),
    // Fastify's own schema validation is not used: the model schemas are checked in the
    // handlers so that errors name the field, the rule and the value (schema/validate.ts).
  });
  const { config } = deps;
  const ctx: AppContext = {
    ...deps,
    baseUrl: (req) => config.publicUrl?.replace(/\/$/, "") ?? `${req.protocol}://${req.host}`,
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
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", jsonBodyParser(app, deps.config.bodyLimitBytes));
  function sendError(err: unknown, req: FastifyRequest, reply: FastifyReply, unrouted = false): void {
    const apiErr = toApiError(err, deps.config.bodyLimitBytes, req);
    if (apiErr.status >= 500) req.log.error({ err }, "request failed");
    ctx.metrics.errors.inc({ code: apiErr.code });
    // framework errors come before routing, where the /v1 plugin's hook does not reshape them
    const v1 = unrouted && (req.raw.url ?? "").startsWith("/v1/");
    const body = v1 ? openAIError(apiErr.status, apiErr.toBody()) : apiErr.toBody();
    void reply.code(apiErr.status).headers(apiErr.headers).send(body);
  }
  app.setErrorHandler((err, req, reply) => sendError(err, req, reply));
  app.setNotFoundHandler((req, reply) => {
    const e = new ApiError("route_not_found", { method: req.method, url: req.url.split("?")[0] ?? "" });
    ctx.metrics.errors.inc({ code: e.code });
    void reply.code(e.status).send(e.toBody());
  });

  registerOrigin(app, ctx); // first: a cross-site or rebound request is refused before anything runs
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

/** A URL as shown in a message: without its query, at most 120 characters. */
const shownUrl = (url: string | undefined) => {
  const path = (url ?? "").split("?")[0] ?? "";
  return path.length > 120 ? `${path.slice(0, 117)}...` : path;
};

function toApiError(err: unknown, bodyLimit: number, req: FastifyRequest): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  switch (e.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new ApiError("body_too_large", { limit: bodyLimit });
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new ApiError("unsupported_media_type", { contentType: req.headers["content-type"] ?? "none" });
    case "FST_ERR_BAD_URL":
      return new ApiError("url_malformed", { url: shownUrl(req.raw.url) });
    case "FST_ERR_MAX_PARAM_LENGTH":
      return new ApiError("path_param_too_long", {
        method: req.method,
        url: shownUrl(req.raw.url),
        limit: 100,
      });
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

/** A request the HTTP parser refused (no route, no reply object): the envelope, written raw. */
function clientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const apiErr =
    err.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? new ApiError("request_timeout")
      : err.code === "HPE_HEADER_OVERFLOW"
        ? new ApiError("headers_too_large")
        : new ApiError("http_unparseable", { reason: err.code ?? "error" });
  const body = JSON.stringify(apiErr.toBody());
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${apiErr.status} ${apiErr.title}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

/** Nesting deeper than this is refused before the body is parsed (nothing walks such a value). */
export const MAX_JSON_DEPTH = 64;
/** Fields and list items one JSON body may hold (a request has a few dozen); more is refused unparsed. */
export const MAX_JSON_MEMBERS = 10_000;

/**
 * Scans a JSON body as it arrives, byte by byte (structure is ASCII, so UTF-8 needs no decoding):
 * nesting depth, the number of fields and items (commas plus containers), and the top-level field
 * being read, so a refusal can name it. It checks structure only; JSON.parse checks the rest.
 */
class JsonScan {
  private depth = 0;
  private members = 0;
  private inString = false;
  private escaped = false;
  /** per depth, whether the container there is an object */
  private readonly objects: boolean[] = [];
  private expectKey = false;
  private key: number[] | null = null;
  private field: string | null = null;

  /** null while the body may be fine; else the refusal, naming the field where there is one. */
  feed(c: Buffer): ApiError | null {
    let nextEscape = -2; // where the next backslash of this chunk is (-1: none; -2: not looked yet)
    for (let i = 0; i < c.length; i++) {
      if (this.inString) {
        if (this.escaped) {
          this.escaped = false;
          if (this.key && this.key.length < 256) this.key.push(c[i] as number);
          continue;
        }
        if (!this.key) {
          // skip the string's body natively: to the next quote or backslash
          if (nextEscape !== -1 && nextEscape < i) nextEscape = c.indexOf(92, i);
          const quote = c.indexOf(34, i);
          const stop =
            quote === -1 ? nextEscape : nextEscape !== -1 && nextEscape < quote ? nextEscape : quote;
          if (stop === -1) return null; // the string goes on in the next chunk
          i = stop;
        }
        const b = c[i] as number;
        if (b === 92) this.escaped = true;
        if (b === 34 && !this.escaped) {
          this.inString = false;
          if (this.key) this.field = decodeKey(this.key);
          this.key = null;
        } else if (this.key && this.key.length < 256) this.key.push(b);
        continue;
      }
      switch (c[i]) {
        case 34: // "
          this.inString = true;
          if (this.expectKey && this.depth === 1) this.key = [];
          this.expectKey = false;
          break;
        case 123: // {
        case 91: // [
          this.depth++;
          this.members++;
          this.objects[this.depth] = c[i] === 123;
          this.expectKey = c[i] === 123;
          if (this.depth > MAX_JSON_DEPTH) {
            return this.field && this.depth > 2
              ? new ApiError(
                  "field_too_deep",
                  { field: this.field, limit: MAX_JSON_DEPTH },
                  { fields: [this.field] },
                )
              : new ApiError("body_too_deep", { limit: MAX_JSON_DEPTH });
          }
          break;
        case 125: // }
        case 93: // ]
          this.depth--;
          break;
        case 44: // ,
          this.members++;
          this.expectKey = this.objects[this.depth] === true;
          break;
      }
      if (this.members > MAX_JSON_MEMBERS) {
        return this.field && this.depth > 1
          ? new ApiError(
              "field_too_many_members",
              { field: this.field, limit: MAX_JSON_MEMBERS },
              { fields: [this.field] },
            )
          : new ApiError("body_too_many_members", { limit: MAX_JSON_MEMBERS });
      }
    }
    return null;
  }
}

function decodeKey(bytes: number[]): string {
  const raw = Buffer.from(bytes).toString("utf8");
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return raw;
  }
}

/**
 * application/json bodies, read as they arrive: 413 as soon as the body passes the limit, and a
 * 400 naming the field as soon as it nests deeper than MAX_JSON_DEPTH or holds more than
 * MAX_JSON_MEMBERS fields and items, before JSON.parse runs (a 19 MB body of a million fields took
 * JSON.parse alone most of a second of blocked event loop; 100,000 levels overflowed the stack).
 * A refused body is read to its end and dropped, as fastify does, so the client gets the answer.
 */
function jsonBodyParser(app: FastifyInstance, limit: number) {
  const parse = app.getDefaultJsonParser("error", "error");
  return (
    req: FastifyRequest,
    payload: IncomingMessage,
    done: (err: Error | null, body?: unknown) => void,
  ) => {
    const declared = Number(req.headers["content-length"]);
    if (declared > limit) {
      done(new ApiError("body_too_large", { limit }));
      return;
    }
    const scan = new JsonScan();
    const chunks: Buffer[] = [];
    let received = 0;
    const stop = (err: Error | null) => {
      payload.removeListener("data", onData);
      payload.removeListener("end", onEnd);
      payload.removeListener("error", onEnd);
      chunks.length = 0;
      if (err) done(err);
    };
    const onData = (chunk: Buffer | string) => {
      const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      received += buf.length;
      if (received > limit) return stop(new ApiError("body_too_large", { limit }));
      const refused = scan.feed(buf);
      if (refused) return stop(refused);
      chunks.push(buf);
    };
    const onEnd = (err?: Error & { statusCode?: number }) => {
      const body = Buffer.concat(chunks, received);
      stop(null);
      if (err) {
        if (!(typeof err.statusCode === "number" && err.statusCode >= 400)) err.statusCode = 400;
        done(err);
        return;
      }
      if (!Number.isNaN(declared) && received !== declared) {
        done(new ApiError("body_length_mismatch", { received, declared }));
        return;
      }
      try {
        parse(req, body.toString("utf8"), done);
      } catch (e) {
        done(e as Error);
      }
    };
    payload.on("data", onData);
    payload.on("end", onEnd);
    payload.on("error", onEnd);
    payload.resume();
  };
}
