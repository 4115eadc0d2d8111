// GET /api/ai/models and /api/ai/models/:id: the served models with their request schema.
import { Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.js";
import { ApiError } from "../errors.js";
import { findModel, jsonSchemaOf, MODELS, type ModelSpec } from "../schema/models.js";

/** GET /api/ai/models/:id/loras: the engine's doctor report of each file (engine/loras.ts LoraEntry). */
export const LoraList = Type.Object({
  object: Type.Literal("list"),
  data: Type.Array(
    Type.Object({
      name: Type.String({
        description: "What a request's loras[].name says: the path in KONTEXT_LORA_DIR without .safetensors.",
      }),
      size_bytes: Type.Integer({ description: "The file's size." }),
      format: Type.Union([Type.String(), Type.Null()], {
        description:
          "The detected key format (diffusers/PEFT, kohya, BFL-native, fal); null when unreadable.",
      }),
      matched: Type.Integer({ description: "LoRA modules that match a layer of the model." }),
      total: Type.Integer({ description: "LoRA modules in the file (text encoder modules not counted)." }),
      unmatched_prefixes: Type.Array(Type.String(), { description: "Key prefixes that match no layer." }),
      text_encoder_modules: Type.Integer({ description: "Text encoder modules in the file (not applied)." }),
      ok: Type.Boolean({ description: "Usable: readable and at least 90 % of its modules matched." }),
      error: Type.Union([Type.String(), Type.Null()], { description: "Why it is not ok." }),
    }),
  ),
});

export function describeModel(model: ModelSpec, ctx: Pick<AppContext, "engine">): Record<string, unknown> {
  const loaded = ctx.engine.status().find((s) => s.model)?.model ?? null;
  const schema = jsonSchemaOf(model.schema);
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
    // Kontext addition: text-to-image, POST /api/ai/images/generate (no input image).
    generate_endpoint: "/images/generate",
    json_generate_request_schema: jsonSchemaOf(model.generateSchema),
  };
}

export function registerModels(app: FastifyInstance, ctx: AppContext): void {
  app.get("/api/ai/models", async () => ({ object: "list", data: MODELS.map((m) => describeModel(m, ctx)) }));
  app.get<{ Params: { id: string } }>("/api/ai/models/:id", async (req) => {
    const model = findModel(req.params.id);
    if (!model) throw new ApiError("model_not_found", { model: req.params.id });
    return describeModel(model, ctx);
  });
  // Kontext addition: the LoRA adapters in KONTEXT_LORA_DIR, with the engine's report of each.
  app.get<{ Params: { id: string } }>("/api/ai/models/:id/loras", async (req) => {
    if (!findModel(req.params.id)) throw new ApiError("model_not_found", { model: req.params.id });
    return { object: "list", data: await ctx.loras.list() };
  });
}
