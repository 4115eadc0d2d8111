// GET /results/:name: result files at stable URLs, kept for KONTEXT_RESULT_TTL_HOURS.
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.js";
import { ApiError } from "../errors.js";
import { CONTENT_TYPES, type OutputFormat } from "../images/codec.js";

export function registerResults(app: FastifyInstance, ctx: AppContext): void {
  app.get<{ Params: { name: string } }>("/results/:name", async (req, reply) => {
    const name = req.params.name;
    const bytes = await ctx.files.readResult(name);
    if (!bytes) throw new ApiError("result_not_found", { name });
    const ext = name.slice(name.lastIndexOf(".") + 1) as OutputFormat;
    return reply
      .header("content-type", CONTENT_TYPES[ext])
      .header("cache-control", "public, max-age=86400, immutable")
      .send(bytes);
  });
}
