// The generation endpoints: sync edit (optionally as an event stream), the async queue, status,
// list, cancel, per-generation events and the latest preview.
import { type Static, Type } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import { ApiError, fieldInvalid, forImageField, generationFailure } from "../errors.js";
import { decodeMask, ENGINE_MAX_SIDE, orientedSize } from "../images/codec.js";
import type { ImageSource } from "../images/ingest.js";
import { idempotencyKeyOf, requestHash } from "../jobs/idempotency.js";
import type { InsertMeta, ListFilter } from "../jobs/job-queue.js";
import { warningsOf } from "../jobs/run.js";
import type { Generation, StoredEvent } from "../jobs/types.js";
import { FINAL } from "../jobs/types.js";
import {
  type EditParams,
  type EditRequestBody,
  type GenerateRequestBody,
  generateWithDefaults,
  IMAGE_FIELDS,
  isEdit,
  MODEL_ID,
  REFERENCE_FIELDS,
  type RequestParams,
  withDefaults,
} from "../schema/flux-kontext-dev.js";
import { findModel, type ModelSpec } from "../schema/models.js";
import { validateBody } from "../schema/validate.js";
import type { StoredInput } from "../storage/files.js";
import { ownerScope, ownGeneration } from "./auth.js";
import { limitParam, readListQuery, statusParam } from "./query.js";
import { changeOf, loraReportOf, promptTokensOf, renderEvent, renderGeneration } from "./render.js";
import { lastEventId, SseStream, wantsEventStream } from "./sse.js";

export const ListQuery = Type.Object(
  {
    model: Type.Optional(Type.String({ description: "Only generations of this model.", minLength: 1 })),
    status: statusParam(". Default: queued,processing (active only)."),
    limit: limitParam(100),
  },
  { additionalProperties: false },
);

/** Where a body was sent: the sync edit, the sync text-to-image, or the queue (either). */
export type Endpoint = "edit" | "generate" | "queue";

/**
 * Validates the body against its model's schema and applies defaults. The queue takes both
 * kinds: a body with input_image is an edit; one without it is a text-to-image generation when it
 * fits the generate schema, and otherwise is refused as an edit (naming the missing input_image).
 */
function parseRequest(body: unknown, endpoint: Endpoint): RequestParams {
  const requested = (body as Record<string, unknown> | null)?.model;
  const modelId = typeof requested === "string" ? requested : MODEL_ID;
  const model = findModel(modelId);
  if (!model && typeof requested === "string") throw new ApiError("model_not_found", { model: requested });
  const spec = model ?? findModelOrThrow();
  const params = generates(spec, body, endpoint)
    ? generateWithDefaults(validateBody<GenerateRequestBody>(spec.generateSchema, body))
    : withDefaults(validateBody<EditRequestBody>(spec.schema, body));
  if (endpoint !== "queue" && params.num_generations !== 1) {
    throw fieldInvalid(
      "num_generations",
      `must be 1 on POST /api/ai/images/${endpoint} (use POST /api/ai/queue for up to 4)`,
      params.num_generations,
    );
  }
  if (endpoint === "queue" && params.stream) {
    throw fieldInvalid(
      "stream",
      "only POST /api/ai/images/edit and /api/ai/images/generate stream; follow a queued generation with GET /api/ai/queue/:id/events",
      "true",
    );
  }
  if (isEdit(params)) {
    checkOutputResolution(params);
    checkImages(params);
  }
  return params;
}

/** Whether the body is read as text-to-image: always on /generate; on the queue, when it fits. */
function generates(spec: ModelSpec, body: unknown, endpoint: Endpoint): boolean {
  if (endpoint !== "queue") return endpoint === "generate";
  if (typeof body !== "object" || body === null || Array.isArray(body) || "input_image" in body) return false;
  try {
    validateBody(spec.generateSchema, body);
    return true;
  } catch {
    return false; // fits neither: the edit schema's message names the missing input_image
  }
}

/**
 * The reference images, the mask and strength together with the rest of the request, before
 * anything is fetched or stored (400 naming the field): references fill input_image_2 up, and a
 * mask or strength below 1 starts from input_image, so the output keeps its shape.
 */
function checkImages(p: EditParams): void {
  for (const [i, field] of REFERENCE_FIELDS.entries()) {
    const before = REFERENCE_FIELDS[i - 1];
    if (before && p[field] !== undefined && p[before] === undefined)
      throw fieldInvalid(
        field,
        `needs ${before} (the reference images fill input_image_2 up, in order)`,
        "a value",
      );
  }
  const fromInput =
    p.mask_image !== undefined ? "a masked edit (mask_image)" : p.strength < 1 ? "strength below 1" : null;
  if (fromInput && p.aspect_ratio !== "match_input_image")
    throw fieldInvalid(
      "aspect_ratio",
      `must be match_input_image with ${fromInput} (the edit starts from input_image, so it keeps its shape)`,
      p.aspect_ratio,
    );
  // As the engine counts the steps a strength leaves (diffusers' get_timesteps): none is refused.
  const n = p.num_inference_steps;
  if (Math.trunc(Math.max(n - Math.min(n * p.strength, n), 0)) >= n)
    throw fieldInvalid("strength", `leaves no step of ${n} to run`, p.strength);
}

/**
 * A stored mask_image against its input image: decoded as the engine will get it (at the
 * input's size), it must change something. 400 naming mask_image otherwise.
 */
async function checkMask(ctx: AppContext, mask: StoredInput, input: StoredInput): Promise<void> {
  const stored = await ctx.files.readInput(mask);
  if (!stored)
    throw new ApiError("storage_unavailable", {
      where: ctx.files.location,
      reason: "the mask just stored is gone",
    });
  const seen = await decodeMask(stored.bytes, ctx.config.maxInputPixels, input.width, input.height).catch(
    (err) => {
      throw forImageField(err, "mask_image");
    },
  );
  if (seen.changed > 0) return;
  throw fieldInvalid(
    "mask_image",
    seen.byAlpha
      ? "nothing to edit: no pixel is transparent enough (transparent = change; the mask is read by its alpha since it has some)"
      : "nothing to edit: no pixel is light enough (white = change, black = keep)",
    "an empty mask",
  );
}

/** output_resolution and preserve_unedited together with the rest of the request (400 naming the field). */
function checkOutputResolution(p: EditParams): void {
  if (p.output_resolution !== "input") {
    if (p.preserve_unedited !== undefined)
      throw fieldInvalid(
        "preserve_unedited",
        "applies only with output_resolution input (a bucket-sized result has no original pixels to keep)",
        String(p.preserve_unedited),
      );
    return;
  }
  if (p.aspect_ratio !== "match_input_image")
    throw fieldInvalid(
      "aspect_ratio",
      "must be match_input_image with output_resolution input (the result has the input's own shape)",
      p.aspect_ratio,
    );
}

/**
 * output_resolution input needs the engine to receive the input at its own size: at most
 * ENGINE_MAX_SIDE px a side (larger inputs are shrunk for the engine). 400 naming the limit.
 */
async function checkInputSize(params: EditParams, input: StoredInput): Promise<void> {
  if (params.output_resolution !== "input" || input.format === "raw") return;
  const { width, height } = await orientedSize(input.path);
  if (width <= ENGINE_MAX_SIDE && height <= ENGINE_MAX_SIDE) return;
  throw fieldInvalid(
    "output_resolution",
    `input needs an input image of at most ${ENGINE_MAX_SIDE} px a side (the engine's limit, ENGINE_MAX_SIDE); this one is ${width}×${height}`,
    "input",
  );
}

function findModelOrThrow(): ModelSpec {
  const m = findModel(MODEL_ID);
  if (!m) throw new ApiError("model_not_found", { model: MODEL_ID });
  return m;
}

function requireEngine(ctx: AppContext): void {
  const states = ctx.engine.status();
  if (states.some((s) => s.state === "idle" || s.state === "busy")) return;
  // Jobs are still accepted while engines start (they wait in the queue); refused only when every
  // engine has failed to start, so a client is not left waiting on a server that cannot serve.
  if (states.length > 0 && states.every((s) => s.state === "failed")) {
    throw new ApiError("engine_not_ready", { reason: states.map((s) => s.problem ?? s.state).join("; ") });
  }
}

/** Image bytes a multipart form sent, by the request field they stand for. */
export type ImageUploads = Partial<Record<"input_image" | (typeof IMAGE_FIELDS)[number], Buffer>>;

/**
 * Validates, checks an engine can serve, ingests the images (an edit's) and queues: every submit
 * path (hosted, OpenAI). `req` gives the caller (its key's limits and ownership), the
 * Idempotency-Key and the base URL webhooks use. `uploads`: images' bytes as a multipart form
 * sent them (the body's field then names them by hash), used as they are.
 */
export async function submit(
  ctx: AppContext,
  body: unknown,
  endpoint: Endpoint,
  req?: FastifyRequest,
  uploads: ImageUploads = {},
): Promise<Generation[]> {
  const params = parseRequest(body, endpoint);
  await ctx.loras.check(params.loras); // a LoRA not listed or refused by the doctor: 400, nothing queued
  const owner = req ? (ownerScope(ctx, req).owner ?? null) : null;
  const key = idempotencyKeyOf(req?.headers["idempotency-key"]);
  const hash = key ? requestHash(endpoint, body) : "";
  const create = async () => {
    requireEngine(ctx);
    const count = endpoint === "queue" ? params.num_generations : 1;
    const release = ctx.keys.admit(owner, count, await ctx.queue.countActiveOf(owner));
    try {
      await ctx.queue.admit(count); // shutting down or full: refused before anything is stored
      if (params.webhook) await ctx.webhooks.check(params.webhook);
      await ctx.retention.ensureRoom();
      const meta: InsertMeta = { owner, baseUrl: req ? ctx.baseUrl(req) : ctx.config.publicUrl };
      if (key) meta.idempotency = { key, requestHash: hash };
      if (!isEdit(params)) return await ctx.queue.submit(params, null, count, meta); // text-to-image: no input
      // The inputs stay pinned until their generations are written; a refusal removes what it stored.
      const images: ImageSource[] = [
        { field: "input_image", source: uploads.input_image ?? params.input_image },
      ];
      for (const field of IMAGE_FIELDS) {
        const source = uploads[field] ?? params[field];
        if (source !== undefined) images.push({ field, source });
      }
      return await ctx.images.withInputs(images, async ([input, ...extra]) => {
        const stored = new Map(images.slice(1).map((im, i) => [im.field, extra[i] as StoredInput]));
        const main = input as StoredInput;
        await checkInputSize(params, main);
        const mask = stored.get("mask_image") ?? null;
        if (mask) await checkMask(ctx, mask, main);
        meta.inputs = {
          references: REFERENCE_FIELDS.flatMap((f) => stored.get(f) ?? []),
          mask,
        };
        return ctx.queue.submit(params, main, count, meta);
      });
    } finally {
      release();
    }
  };
  return key ? ctx.idempotency.once(owner, key, hash, create) : create();
}

/**
 * Replays a generation's events after `after`, then follows it until its final event. Live events
 * that arrive while the stored ones are read wait, so the client gets each once, in id order; on
 * `resync` (Redis reconnected) the stored events are read again from the last one sent.
 *
 * While the generation is queued its position is sent each time it changes, as a
 * media_generation_queued event without an id (not stored: Last-Event-ID stays on stored events).
 * What can move it up is another generation starting, ending or being queued again, so each such
 * event costs one position query per open queued stream; progress events cost none. A replayed
 * queued event carries the position as it is now, never the larger one it was stored with (0 once
 * the generation has left the queue).
 */
function streamGeneration(
  ctx: AppContext,
  sse: SseStream,
  id: string,
  after: number,
  base: string,
  inline: boolean,
) {
  let chain = Promise.resolve();
  let lastSent = after;
  let reading = 0;
  const waiting: StoredEvent[] = [];
  // Positions: the last one sent; whether the generation is queued as far as this stream has
  // told (its latest event); its model (for the updates); a position query running, another
  // asked for while it ran, one asked for while the stored events were read.
  let position: number | null = null;
  let queued = true;
  let model: string | null = null;
  let checking = false;
  let checkAgain = false;
  let missed = false;
  const sendPosition = (p: number) => {
    if (p === position) return;
    position = p;
    const data = { generation_id: id, status: "queued", model, queue_position: p };
    chain = chain.then(() => sse.send(null, "media_generation_queued", data));
  };
  /** `now`: the position as it is now, for a replayed queued event (null: no longer queued). */
  const push = (e: StoredEvent, now?: number | null) => {
    if (e.id <= lastSent) return;
    lastSent = e.id;
    let shown = e;
    queued = e.event === "media_generation_queued";
    if (queued) {
      const p = now === undefined ? e.data.queue_position : (now ?? 0);
      if (typeof p === "number") position = p;
      shown = { ...e, data: { ...e.data, queue_position: p } };
    }
    chain = chain.then(async () => {
      sse.send(e.id, e.event, await renderEvent(shown, base, ctx, inline));
      if (e.event === "media_generation_completed") sse.close();
    });
  };
  const check = () => {
    if (!queued || sse.closed) return;
    if (reading > 0) {
      missed = true; // checked once the stored events are read
      return;
    }
    if (checking) {
      checkAgain = true;
      return;
    }
    checking = true;
    void (async () => {
      try {
        do {
          checkAgain = false;
          const p = await ctx.queue.queuePosition(id);
          if (reading > 0) {
            missed = true;
            break;
          }
          // Not when its started or completed event came meanwhile: the position was older.
          if (p !== null && queued) sendPosition(p);
        } while (checkAgain && queued && !sse.closed);
      } catch {
        // the store cannot be read now: the next change checks again
      } finally {
        checking = false;
      }
    })();
  };
  const onEvent = (e: StoredEvent) => {
    if (e.generationId !== id) {
      const movesQueue =
        e.event === "media_generation_started" ||
        e.event === "media_generation_completed" ||
        (e.event === "media_generation_queued" && e.data.retry === true);
      if (movesQueue) check();
      return;
    }
    if (reading > 0) waiting.push(e);
    else {
      push(e);
      if (e.event === "media_generation_queued") check(); // queued again: where it stands now
    }
  };
  const catchUp = async () => {
    reading++;
    try {
      const events = await ctx.queue.eventsOf(id, lastSent);
      // Read after the events, so the position it gives is never older than they are.
      const g = await ctx.queue.get(id);
      model ??= g?.model ?? null;
      const now = g?.status === "queued" ? g.queuePosition : null;
      for (const e of events) push(e, now);
      if (g) queued = g.status === "queued";
      // A final generation's events are all stored: when none was left to replay (a client that
      // resumes at or past the last event, as EventSource does), the stream ends here.
      if (g && FINAL.includes(g.status)) {
        for (const e of await ctx.queue.eventsOf(id, lastSent)) push(e); // stored while we looked
        chain = chain.then(() => sse.close());
      } else if (now !== null) sendPosition(now); // a resumed client may hold an older one
    } catch {
      sse.close(); // the store cannot be read: the client reconnects with Last-Event-ID
    } finally {
      reading--;
      if (reading === 0) {
        for (const e of waiting.splice(0)) push(e);
        if (missed) {
          missed = false;
          check();
        }
      }
    }
  };
  const onResync = () => void catchUp();
  ctx.queue.on("event", onEvent);
  ctx.queue.on("resync", onResync);
  sse.onClose(() => {
    ctx.queue.off("event", onEvent);
    ctx.queue.off("resync", onResync);
  });
  void catchUp();
}

async function syncResponse(ctx: AppContext, g: Generation, base: string): Promise<Record<string, unknown>> {
  const failed = generationFailure(g);
  if (failed) throw failed;
  const path = ctx.queue.resultUrlPath(g) as string;
  const image: Record<string, string> = {};
  if (g.params.response_format === "b64_json") {
    const bytes = await ctx.files.readResult(g.resultFile as string);
    if (!bytes) throw new ApiError("result_not_found", { name: g.resultFile ?? "" });
    image.b64_json = bytes.toString("base64");
  } else image.url = `${base}${path}`;
  return {
    model: g.model,
    created: Math.floor((g.completedAt ?? Date.now()) / 1000),
    images: [image],
    generation_id: g.id,
    seed: g.seed,
    width: g.width,
    height: g.height,
    output_format: g.params.output_format,
    timings: g.timings
      ? { queue: g.timings.queue, inference: g.timings.inference, encode: g.timings.encode }
      : null,
    ...promptTokensOf(g),
    ...loraReportOf(g),
    ...changeOf(g, base),
    ...warningsOf(g),
  };
}

/**
 * The sync endpoints: the result once the generation is done, or its event stream (Accept:
 * text/event-stream or "stream": true). The generation runs whether or not the client stays.
 */
async function answerSync(
  ctx: AppContext,
  endpoint: "edit" | "generate",
  req: FastifyRequest,
  reply: FastifyReply,
) {
  const streamed = wantsEventStream(req) || (req.body as { stream?: unknown } | null)?.stream === true;
  const [g] = await submit(ctx, req.body, endpoint, req);
  const gen = g as Generation;
  const base = ctx.baseUrl(req);
  if (streamed) {
    const sse = new SseStream(req, reply, ctx.config.sseKeepAliveS);
    streamGeneration(ctx, sse, gen.id, 0, base, gen.params.response_format === "b64_json");
    return reply;
  }
  return syncResponse(ctx, await ctx.queue.waitFor(gen.id), base);
}

export function registerGenerations(app: FastifyInstance, ctx: AppContext): void {
  app.post("/api/ai/images/edit", (req, reply) => answerSync(ctx, "edit", req, reply));
  // Kontext addition: text-to-image (the hosted API's name for it), the same jobs without an input.
  app.post("/api/ai/images/generate", (req, reply) => answerSync(ctx, "generate", req, reply));

  app.post("/api/ai/queue", async (req) => {
    const gens = await submit(ctx, req.body, "queue", req);
    return { generations: gens.map((g) => ({ generation_id: g.id, status: g.status })) };
  });

  app.get<{ Querystring: Static<typeof ListQuery> }>("/api/ai/queue", async (req) => {
    const q = readListQuery(ListQuery, req.query, { limit: 100, statuses: ["queued", "processing"] });
    const opts: ListFilter = { statuses: q.statuses, limit: q.limit };
    if (q.model) opts.model = q.model;
    const gens = await ctx.queue.list({ ...opts, ...ownerScope(ctx, req) });
    const base = ctx.baseUrl(req);
    return { count: gens.length, generations: gens.map((g) => renderGeneration(g, ctx, base)) };
  });

  app.get<{ Params: { id: string } }>("/api/ai/queue/:id", async (req) => {
    const g = await ownGeneration(ctx, req, req.params.id);
    return renderGeneration(g, ctx, ctx.baseUrl(req));
  });

  app.delete<{ Params: { id: string } }>("/api/ai/queue/:id", async (req) => {
    await ownGeneration(ctx, req, req.params.id);
    const g = await ctx.queue.cancel(req.params.id);
    return { status: "success", generation_id: g.id };
  });

  app.get<{ Params: { id: string } }>("/api/ai/queue/:id/events", async (req, reply) => {
    const g = await ownGeneration(ctx, req, req.params.id);
    const sse = new SseStream(req, reply, ctx.config.sseKeepAliveS);
    const inline = (req.query as { response_format?: string }).response_format === "b64_json";
    streamGeneration(ctx, sse, g.id, lastEventId(req), ctx.baseUrl(req), inline);
    return reply;
  });

  app.get<{ Params: { id: string } }>("/api/ai/queue/:id/preview", async (req, reply) => {
    const g = await ownGeneration(ctx, req, req.params.id);
    const preview = await ctx.queue.latestPreview(g.id);
    if (!preview) {
      const state = FINAL.includes(g.status) ? `is ${g.status}` : "has no preview yet";
      throw new ApiError("result_not_found", { name: `preview of ${g.id} (the generation ${state})` });
    }
    return reply.header("content-type", "image/jpeg").header("cache-control", "no-store").send(preview);
  });
}
