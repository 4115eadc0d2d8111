// The workbench's history: every generation of every status, newest first, searchable by prompt,
// with the edit chain it belongs to (parent_generation_id) and its input image. Kept in the job
// store, so it survives reloads and restarts for as long as results are kept.
import { type Static, Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../app.js";
import { ApiError } from "../errors.js";
import { encodeOutput, INPUT_CONTENT_TYPES, type InputFormat } from "../images/codec.js";
import type { HistoryFilter, QueuedGeneration } from "../jobs/job-queue.js";
import { validateBody } from "../schema/validate.js";
import { ownerScope, ownGeneration, visibleTo } from "./auth.js";
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
    limit: Type.Optional(
      Type.String({
        description: "At most this many, newest first (1–1000, default 200).",
        pattern: "^[0-9]+$",
      }),
    ),
  },
  { additionalProperties: false },
);

/** A generation as the history lists it: the queue's view plus its chain link and input image. */
export function renderHistoryItem(
  g: QueuedGeneration,
  ctx: AppContext,
  base: string,
): Record<string, unknown> {
  return {
    ...renderGeneration(g, ctx, base),
    parent_generation_id: g.parentId,
    input_url: `${base}/api/history/${g.id}/input`,
    input_width: g.input.width,
    input_height: g.input.height,
  };
}

export function registerHistory(app: FastifyInstance, ctx: AppContext): void {
  app.get("/api/history", async (req) => {
    const q = validateBody<Static<typeof HistoryQuery>>(HistoryQuery, req.query ?? {});
    const limit = q.limit === undefined ? 200 : Number(q.limit);
    if (!(limit >= 1 && limit <= 1000)) {
      throw new ApiError(
        "invalid_request",
        { detail: `limit: must be an integer from 1 to 1000, got ${JSON.stringify(q.limit)}` },
        { fields: ["limit"] },
      );
    }
    let before: number | undefined;
    if (q.before !== undefined) {
      const g = await ctx.queue.get(q.before);
      if (!visibleTo(ctx, req, g)) {
        throw new ApiError(
          "invalid_request",
          { detail: `before: no generation has the id ${JSON.stringify(q.before)}` },
          { fields: ["before"] },
        );
      }
      before = g.seq;
    }
    const filter: HistoryFilter = { limit, ...ownerScope(ctx, req) };
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
    const stored = await ctx.files.readInput(g.input);
    if (!stored) throw new ApiError("result_not_found", { name: `input image of ${g.id}` });
    const raw = stored.format === "raw";
    const bytes = raw
      ? await encodeOutput(stored.bytes, g.input.width, g.input.height, "png", 100)
      : stored.bytes;
    return reply
      .header("content-type", raw ? "image/png" : INPUT_CONTENT_TYPES[stored.format as InputFormat])
      .header("cache-control", "public, max-age=86400, immutable")
      .send(bytes);
  });
}
