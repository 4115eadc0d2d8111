// The workbench's history: every generation of every status, newest first, searchable by prompt
// and filtered by status and star, with the edit chain it belongs to (parent_generation_id), its
// input image and small thumbnails of both; starred (PATCH) and deleted (DELETE) one by one. Kept
// in the job store, so it survives reloads and restarts for as long as results are kept.
import { type Static, Type } from "@sinclair/typebox";
import type { FastifyInstance, FastifyReply } from "fastify";
import type { AppContext } from "../context.js";
import { ApiError, fieldInvalid } from "../errors.js";
import { encodeOutput, INPUT_CONTENT_TYPES, type InputFormat, thumbnail } from "../images/codec.js";
import { ThumbnailCache } from "../images/thumbnails.js";
import type { HistoryFilter, QueuedGeneration } from "../jobs/job-queue.js";
import { type Generation, type GenerationInput, type InputRef, STATUSES } from "../jobs/types.js";
import { IMAGE_FIELDS, REFERENCE_FIELDS } from "../schema/flux-kontext-dev.js";
import { validateBody } from "../schema/validate.js";
import { ownerScope, ownGeneration, visibleTo } from "./auth.js";
import { limitParam, readListQuery, statusParam } from "./query.js";
import { renderGeneration } from "./render.js";

export const HistoryQuery = Type.Object(
  {
    q: Type.Optional(
      Type.String({
        description: "Only generations whose prompt contains this text (any case).",
        maxLength: 500,
      }),
    ),
    before: Type.Optional(
      Type.String({
        description: "Only generations older than this generation id (the next page).",
        minLength: 1,
      }),
    ),
    limit: limitParam(200),
    status: statusParam(" (the default)."),
    starred: Type.Optional(
      Type.Unsafe<"true" | "false">({
        type: "string",
        enum: ["true", "false"],
        description: "true: only starred generations; false: only those not starred.",
      }),
    ),
  },
  { additionalProperties: false },
);

/** Thumbnail sizes: the longest side in pixels. */
export const THUMBNAIL_SIZE = { min: 64, max: 512, default: 256 } as const;

export const ThumbnailQuery = Type.Object(
  {
    size: Type.Optional(
      Type.String({
        description: `The longest side in pixels, ${THUMBNAIL_SIZE.min}–${THUMBNAIL_SIZE.max} (default ${THUMBNAIL_SIZE.default}); a smaller image is not enlarged.`,
      }),
    ),
  },
  { additionalProperties: false },
);

export const StarBody = Type.Object(
  {
    starred: Type.Boolean({ description: "Star (true) or unstar (false) the generation in the history." }),
  },
  { additionalProperties: false, description: "PATCH /api/history/:id: what to change (only starred)." },
);

const IMMUTABLE = "public, max-age=86400, immutable";

/** A generation's image other than input_image, by its request field; null when it has none. */
function imageOf(g: QueuedGeneration, field: string): InputRef | null {
  if (field === "mask_image") return g.mask;
  const i = (REFERENCE_FIELDS as readonly string[]).indexOf(field);
  return i >= 0 ? (g.references[i] ?? null) : null;
}

/** How the history shows a generation's other image: as its input image is shown. */
const inputItem = (g: QueuedGeneration, base: string, field: string, ref: InputRef) => ({
  field,
  url: `${base}/api/history/${g.id}/inputs/${field}`,
  thumbnail_url: `${base}/api/history/${g.id}/inputs/${field}/thumbnail`,
  width: ref.width,
  height: ref.height,
});

/**
 * A generation as the history lists it: the queue's view plus its chain link and input images
 * (the input fields null for text-to-image, which has none).
 */
export function renderHistoryItem(
  g: QueuedGeneration,
  ctx: AppContext,
  base: string,
): Record<string, unknown> {
  return {
    ...renderGeneration(g, ctx, base),
    parent_generation_id: g.parentId,
    input_url: g.input ? `${base}/api/history/${g.id}/input` : null,
    input_width: g.input?.width ?? null,
    input_height: g.input?.height ?? null,
    starred: g.starred,
    thumbnail_url:
      g.status === "succeeded" && ctx.queue.resultUrlPath(g) ? `${base}/api/history/${g.id}/thumbnail` : null,
    input_thumbnail_url: g.input ? `${base}/api/history/${g.id}/input/thumbnail` : null,
    references: g.references.map((r, i) => inputItem(g, base, REFERENCE_FIELDS[i] as string, r)),
    mask: g.mask && inputItem(g, base, "mask_image", g.mask),
  };
}

/** The `field` path parameter of a generation's other image: 404 when it has no such image. */
function otherImage(g: QueuedGeneration, field: string): InputRef {
  const ref = (IMAGE_FIELDS as readonly string[]).includes(field) ? imageOf(g, field) : null;
  if (!ref) throw new ApiError("result_not_found", { name: `${field.slice(0, 40)} of ${g.id}` });
  return ref;
}

/** The `size` of a thumbnail request; 400 naming `size` (or an unknown parameter) otherwise. */
function thumbnailSize(query: unknown): number {
  const q = validateBody<Static<typeof ThumbnailQuery>>(ThumbnailQuery, query ?? {});
  if (q.size === undefined) return THUMBNAIL_SIZE.default;
  const n = /^[0-9]{1,4}$/.test(q.size) ? Number(q.size) : Number.NaN;
  if (!(n >= THUMBNAIL_SIZE.min && n <= THUMBNAIL_SIZE.max)) {
    throw fieldInvalid(
      "size",
      `must be an integer from ${THUMBNAIL_SIZE.min} to ${THUMBNAIL_SIZE.max}`,
      JSON.stringify(q.size.slice(0, 80)),
    );
  }
  return n;
}

/** The generation's input, or 404 result_not_found for text-to-image (made from the prompt alone). */
function inputOf(g: Generation): GenerationInput {
  if (!g.input)
    throw new ApiError("result_not_found", { name: `input image of ${g.id} (text-to-image: it has none)` });
  return g.input;
}

const sendThumbnail = (reply: FastifyReply, bytes: Buffer) =>
  reply.header("content-type", "image/webp").header("cache-control", IMMUTABLE).send(bytes);

export function registerHistory(app: FastifyInstance, ctx: AppContext): void {
  app.get("/api/history", async (req) => {
    const q = readListQuery(HistoryQuery, req.query, { limit: 200, statuses: STATUSES });
    let before: number | undefined;
    if (q.before !== undefined) {
      const g = await ctx.queue.get(q.before);
      if (!visibleTo(ctx, req, g)) {
        throw fieldInvalid("before", "must be the id of a generation", JSON.stringify(q.before));
      }
      before = g.seq;
    }
    const filter: HistoryFilter = { limit: q.limit, ...ownerScope(ctx, req) };
    if (!STATUSES.every((s) => q.statuses.includes(s))) filter.statuses = q.statuses;
    if (q.starred !== undefined) filter.starred = q.starred === "true";
    if (q.q?.trim()) filter.query = q.q.trim();
    if (before !== undefined) filter.before = before;
    const gens = await ctx.queue.history(filter);
    const base = ctx.baseUrl(req);
    return { count: gens.length, generations: gens.map((g) => renderHistoryItem(g, ctx, base)) };
  });

  // The input image as it was sent: its original bytes (an input an earlier version stored
  // decoded is served losslessly as PNG).
  app.get<{ Params: { id: string } }>("/api/history/:id/input", async (req, reply) => {
    const g = await ownGeneration(ctx, req, req.params.id);
    const input = inputOf(g);
    const stored = await ctx.files.readInput(input);
    if (!stored) throw new ApiError("result_not_found", { name: `input image of ${g.id}` });
    const raw = stored.format === "raw";
    const bytes = raw
      ? await encodeOutput(stored.bytes, input.width, input.height, "png", 100)
      : stored.bytes;
    return reply
      .header("content-type", raw ? "image/png" : INPUT_CONTENT_TYPES[stored.format as InputFormat])
      .header("cache-control", IMMUTABLE)
      .send(bytes);
  });

  // Thumbnails (WebP, longest side `size`), made on demand and kept in a small LRU in memory.
  const thumbnails = new ThumbnailCache();
  app.get<{ Params: { id: string } }>("/api/history/:id/thumbnail", async (req, reply) => {
    const size = thumbnailSize(req.query);
    const g = await ownGeneration(ctx, req, req.params.id);
    const name = g.status === "succeeded" && ctx.queue.resultUrlPath(g) ? g.resultFile : null;
    const gone = () =>
      new ApiError("result_not_found", {
        name: `result of ${g.id} (${g.status === "succeeded" ? "its files were deleted" : `it is ${g.status}`})`,
      });
    if (!name) throw gone();
    const bytes = await thumbnails.get(`result:${name}:${size}`, async () => {
      const result = await ctx.files.readResult(name);
      return result && thumbnail(result, size);
    });
    if (!bytes) throw gone();
    return sendThumbnail(reply, bytes);
  });

  app.get<{ Params: { id: string } }>("/api/history/:id/input/thumbnail", async (req, reply) => {
    const size = thumbnailSize(req.query);
    const g = await ownGeneration(ctx, req, req.params.id);
    const input = inputOf(g);
    const make = async () => {
      const stored = await ctx.files.readInput(input);
      if (!stored) return null;
      const raw = stored.format === "raw" ? { width: input.width, height: input.height } : undefined;
      return thumbnail(stored.bytes, size, raw);
    };
    // An expired generation's input may be gone (unless another generation still uses it): looked at.
    const bytes =
      g.expiredAt === null ? await thumbnails.get(`input:${input.hash}:${size}`, make) : await make();
    if (!bytes) throw new ApiError("result_not_found", { name: `input image of ${g.id}` });
    return sendThumbnail(reply, bytes);
  });

  // The other images (input_image_2..4, mask_image) as they were sent, and their thumbnails.
  app.get<{ Params: { id: string; field: string } }>("/api/history/:id/inputs/:field", async (req, reply) => {
    const g = await ownGeneration(ctx, req, req.params.id);
    const ref = otherImage(g, req.params.field);
    const stored = await ctx.files.readInput(ref);
    if (!stored || stored.format === "raw")
      throw new ApiError("result_not_found", { name: `${req.params.field} of ${g.id}` });
    return reply
      .header("content-type", INPUT_CONTENT_TYPES[stored.format])
      .header("cache-control", IMMUTABLE)
      .send(stored.bytes);
  });

  app.get<{ Params: { id: string; field: string } }>(
    "/api/history/:id/inputs/:field/thumbnail",
    async (req, reply) => {
      const size = thumbnailSize(req.query);
      const g = await ownGeneration(ctx, req, req.params.id);
      const ref = otherImage(g, req.params.field);
      const make = async () => {
        const stored = await ctx.files.readInput(ref);
        return stored && stored.format !== "raw" ? thumbnail(stored.bytes, size) : null;
      };
      const bytes =
        g.expiredAt === null ? await thumbnails.get(`input:${ref.hash}:${size}`, make) : await make();
      if (!bytes) throw new ApiError("result_not_found", { name: `${req.params.field} of ${g.id}` });
      return sendThumbnail(reply, bytes);
    },
  );

  app.patch<{ Params: { id: string } }>("/api/history/:id", async (req) => {
    const body = validateBody<Static<typeof StarBody>>(StarBody, req.body);
    await ownGeneration(ctx, req, req.params.id);
    const g = await ctx.queue.setStarred(req.params.id, body.starred);
    if (!g) throw new ApiError("generation_not_found", { id: req.params.id });
    return renderHistoryItem(g, ctx, ctx.baseUrl(req));
  });

  // A final generation, for good: its row, events and files (an input other generations use stays).
  app.delete<{ Params: { id: string } }>("/api/history/:id", async (req) => {
    await ownGeneration(ctx, req, req.params.id);
    const g = await ctx.queue.remove(req.params.id);
    await ctx.retention.removeFiles(g);
    return { status: "success", generation_id: g.id };
  });
}
