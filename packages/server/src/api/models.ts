// GET /api/ai/models and /api/ai/models/:id: the served models with their request schema.
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.js";
import { ApiError } from "../errors.js";
import { findModel, jsonSchemaOf, MODELS, type ModelSpec } from "../schema/models.js";

export function describeModel(model: ModelSpec, ctx: Pick<AppContext, "engine">): Record<string, unknown> {
  const loaded = ctx.engine.status().find((s) => s.model)?.model ?? null;
  const schema = jsonSchemaOf(model);
  const demo = loaded?.demo === true;
  return {
    id: model.id,
    object: "model",
    created: model.created,
    owned_by: model.ownedBy,
    display_name: demo ? `${model.displayName} (tiny demo model)` : model.displayName,
    description: demo
      ? `${model.description} DEMO: the tiny random-weight model is loaded, its output is noise. Set KONTEXT_MODEL_DIR to real weights.`
      : model.description,
    capabilities: { input: ["text", "image"], output: ["image"] },
    endpoint: "/images/edit",
    // Kontext additions: what the engines have loaded (null while none is ready).
    demo,
    weights: loaded
      ? { name: loaded.name, variant: loaded.variant, source: loaded.transformer_source }
      : null,
    request_schema: schema,
    json_request_schema: schema,
  };
}

export function registerModels(app: FastifyInstance, ctx: AppContext): void {
  app.get("/api/ai/models", async () => ({ object: "list", data: MODELS.map((m) => describeModel(m, ctx)) }));
  app.get<{ Params: { id: string } }>("/api/ai/models/:id", async (req) => {
    const model = findModel(req.params.id);
    if (!model) throw new ApiError("model_not_found", { model: req.params.id });
    return describeModel(model, ctx);
  });
}
