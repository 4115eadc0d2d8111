// The OpenAPI 3.1 document, built from the same schemas the server validates with. The committed
// packages/server/openapi.json is this document; a test fails when the two drift apart.

import { IMAGE_FIELDS } from "../schema/flux-kontext-dev.js";
import { MODELS } from "../schema/models.js";
import { ListQuery } from "./generations.js";
import { HistoryQuery, StarBody, ThumbnailQuery } from "./history.js";
import { LoraList } from "./models.js";
import {
  OpenAIErrorBody,
  OpenAIGenerateFields,
  OpenAIImagesResponse,
  OpenAIModel,
  OpenAIModelList,
  openAIEditFormSchema,
} from "./openai.js";
import {
  CancelResponse,
  CompletedEvent,
  DeleteResponse,
  EditResponse,
  ErrorEnvelope,
  GenerationList,
  GenerationView,
  HistoryItem,
  HistoryList,
  ModelList,
  ModelView,
  ProgressEvent,
  QueuedEvent,
  QueueResponse,
  StartedEvent,
} from "./responses.js";

const plain = (s: unknown) => JSON.parse(JSON.stringify(s)) as Record<string, unknown>;
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const errors = (...codes: number[]) =>
  Object.fromEntries(codes.map((c) => [String(c), json(ref("Error"), "Error envelope")]));
const openAIErrors = (...codes: number[]) =>
  Object.fromEntries(codes.map((c) => [String(c), json(ref("OpenAIError"), "OpenAI error shape")]));
const sse = (description: string) => ({
  description,
  content: {
    "text/event-stream": {
      schema: {
        type: "string",
        description:
          "Events with `id:` (resume with Last-Event-ID); their data: media_generation_queued QueuedEvent, media_generation_started StartedEvent, media_generation_progress ProgressEvent, media_generation_completed CompletedEvent (components.schemas). While a generation is queued, its stream sends media_generation_queued again, without `id:` (not stored), each time its queue_position changes.",
      },
    },
  },
});
const idempotencyKey = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  schema: { type: "string", pattern: "^[\\x21-\\x7e]{1,255}$" },
  description:
    "Kontext addition: the same key with the same body returns the same generations (kept 24 h); with a different body, 409.",
};
const idParam = {
  name: "id",
  in: "path",
  required: true,
  schema: { type: "string" },
  description: "Generation id",
};
/** A TypeBox query object's properties as OpenAPI query parameters, each with its schema. */
const queryParams = (query: unknown) =>
  Object.entries((plain(query) as { properties: Record<string, Record<string, unknown>> }).properties).map(
    ([name, { description, ...schema }]) => ({ name, in: "query", required: false, schema, description }),
  );
const fieldParam = {
  name: "field",
  in: "path",
  required: true,
  schema: { type: "string", enum: [...IMAGE_FIELDS] },
};

const thumbnailGet = (summary: string, extra: (typeof fieldParam)[] = []) => ({
  get: {
    summary,
    parameters: [idParam, ...extra, ...queryParams(ThumbnailQuery)],
    responses: {
      "200": {
        description: "WebP, cached for good (Cache-Control: public, max-age=86400, immutable)",
        content: { "image/webp": {} },
      },
      ...errors(400, 401, 404),
    },
  },
});

export function buildOpenApi(): Record<string, unknown> {
  const model = MODELS[0];
  if (!model) throw new Error("no model");
  const { $id: _id, ...request } = plain(model.schema);
  const { $id: _gid, ...generateRequest } = plain(model.generateSchema);
  const queueQuery = plain(ListQuery) as { properties: Record<string, { description: string }> };
  return {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: {
      title: "Kontext",
      version: "1.0.0",
      description:
        "Self-hosted FLUX.1 Kontext [dev]. The /api/ai endpoints match the hosted API; Kontext adds event streams, progress, cancellation, /healthz and /metrics.",
    },
    // Keys are optional on loopback: either an API key or nothing.
    security: [{ apiKey: [] }, {}],
    paths: {
      "/api/ai/images/edit": {
        post: {
          summary: "Edit an image and wait for the result",
          parameters: [idempotencyKey],
          description:
            'Blocks until the generation is done (no time limit). With `Accept: text/event-stream` or `"stream": true` it answers a Server-Sent Events stream instead: media_generation_queued, media_generation_started, media_generation_progress, media_generation_completed.',
          requestBody: {
            required: true,
            content: { "application/json": { schema: ref("FluxKontextDevRequest") } },
          },
          responses: {
            "200": {
              description: "The edited image, or an event stream",
              content: {
                "application/json": { schema: ref("EditResponse") },
                "text/event-stream": { schema: { type: "string" } },
              },
            },
            ...errors(400, 401, 404, 409, 413, 415, 422, 429, 500, 503, 507),
          },
        },
      },
      "/api/ai/images/generate": {
        post: {
          summary: "Kontext addition: text-to-image (no input image), waiting for the result",
          parameters: [idempotencyKey],
          description:
            'The same jobs, queue and events as the edit, made from the prompt alone: the output\'s size follows aspect_ratio (default 1:1; no match_input_image). Blocks until the generation is done; with `Accept: text/event-stream` or `"stream": true` it answers a Server-Sent Events stream instead.',
          requestBody: {
            required: true,
            content: { "application/json": { schema: ref("FluxKontextDevGenerateRequest") } },
          },
          responses: {
            "200": {
              description: "The generated image, or an event stream",
              content: {
                "application/json": { schema: ref("EditResponse") },
                "text/event-stream": { schema: { type: "string" } },
              },
            },
            ...errors(400, 401, 404, 409, 413, 415, 429, 500, 503, 507),
          },
        },
      },
      "/api/ai/queue": {
        post: {
          summary: "Queue an edit, or a text-to-image generation (1–4 generations)",
          description:
            "A body with input_image is an edit (FluxKontextDevRequest). A body without it is text-to-image when it fits FluxKontextDevGenerateRequest; one that fits neither is refused as an edit, naming the missing input_image.",
          parameters: [idempotencyKey],
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: { oneOf: [ref("FluxKontextDevRequest"), ref("FluxKontextDevGenerateRequest")] },
              },
            },
          },
          responses: {
            "200": json(ref("QueueResponse"), "Queued"),
            ...errors(400, 401, 404, 409, 413, 415, 422, 429, 503, 507),
          },
        },
        get: {
          summary: "List generations (active only by default)",
          parameters: Object.entries(queueQuery.properties).map(([name, s]) => ({
            name,
            in: "query",
            required: false,
            schema: { type: "string" },
            description: s.description,
          })),
          responses: { "200": json(ref("GenerationList"), "Generations, newest first"), ...errors(400, 401) },
        },
      },
      "/api/ai/queue/{id}": {
        get: {
          summary: "A generation's status",
          parameters: [idParam],
          responses: { "200": json(ref("Generation"), "The generation"), ...errors(401, 404) },
        },
        delete: {
          summary: "Cancel a generation (queued, or processing: stopped between two steps)",
          parameters: [idParam],
          responses: { "200": json(ref("CancelResponse"), "Cancelled"), ...errors(401, 404, 409) },
        },
      },
      "/api/ai/queue/{id}/events": {
        get: {
          summary: "A generation's events (SSE); replays from Last-Event-ID, closes after the final one",
          parameters: [idParam],
          responses: { "200": sse("Event stream"), ...errors(401, 404) },
        },
      },
      "/api/ai/queue/{id}/preview": {
        get: {
          summary: "The latest preview (JPEG) of a processing generation",
          parameters: [idParam],
          responses: { "200": { description: "JPEG", content: { "image/jpeg": {} } }, ...errors(401, 404) },
        },
      },
      "/api/history": {
        get: {
          summary: "The workbench's history: generations of every status, newest first",
          parameters: queryParams(HistoryQuery),
          responses: { "200": json(ref("HistoryList"), "Generations, newest first"), ...errors(400, 401) },
        },
      },
      "/api/history/{id}": {
        patch: {
          summary: "Star or unstar a generation (only `starred`)",
          parameters: [idParam],
          requestBody: {
            required: true,
            content: { "application/json": { schema: ref("HistoryStarRequest") } },
          },
          responses: {
            "200": json(ref("HistoryItem"), "The generation as the history lists it"),
            ...errors(400, 401, 404, 413, 415),
          },
        },
        delete: {
          summary:
            "Delete a final generation: its row, events, result and input (an input another generation uses stays); 409 while queued or processing (cancel it first)",
          parameters: [idParam],
          responses: { "200": json(ref("DeleteResponse"), "Deleted"), ...errors(401, 404, 409) },
        },
      },
      "/api/history/{id}/input": {
        get: {
          summary: "A generation's input image as it was sent (its original bytes and content type)",
          parameters: [idParam],
          responses: {
            "200": {
              description: "The image",
              content: { "image/jpeg": {}, "image/png": {}, "image/gif": {}, "image/webp": {} },
            },
            ...errors(401, 404),
          },
        },
      },
      "/api/history/{id}/inputs/{field}": {
        get: {
          summary:
            "One of a generation's other images as it was sent: field input_image_2, input_image_3, input_image_4 or mask_image (404 when it has none)",
          parameters: [idParam, fieldParam],
          responses: {
            "200": {
              description: "The image",
              content: { "image/jpeg": {}, "image/png": {}, "image/gif": {}, "image/webp": {} },
            },
            ...errors(401, 404),
          },
        },
      },
      "/api/history/{id}/inputs/{field}/thumbnail": thumbnailGet(
        "A small WebP of one of a generation's other images (input_image_2..4, mask_image; longest side `size`, default 256)",
        [fieldParam],
      ),
      "/api/history/{id}/thumbnail": thumbnailGet(
        "A small WebP of the result (longest side `size`, default 256); 404 result_not_found unless succeeded and kept",
      ),
      "/api/history/{id}/input/thumbnail": thumbnailGet(
        "A small WebP of the input image (longest side `size`, default 256)",
      ),
      "/api/events": {
        get: {
          summary: "media_generation_completed for every generation (SSE, keep-alive every 15 s)",
          responses: { "200": sse("Event stream"), ...errors(401) },
        },
      },
      "/api/ai/models": {
        get: { summary: "Served models", responses: { "200": json(ref("ModelList"), "Models") } },
      },
      "/api/ai/models/{id}": {
        get: {
          summary: "One model with its request schema",
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: { "200": json(ref("Model"), "The model"), ...errors(401, 404) },
        },
      },
      "/api/ai/models/{id}/loras": {
        get: {
          summary:
            "Kontext addition: the LoRA adapters in KONTEXT_LORA_DIR with the engine's report of each (empty when unset)",
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: { "200": json(ref("LoraList"), "The LoRA files"), ...errors(401, 404) },
        },
      },
      "/results/{name}": {
        get: {
          summary: "A result file at its stable URL",
          parameters: [{ name: "name", in: "path", required: true, schema: { type: "string" } }],
          responses: {
            "200": {
              description: "The image",
              content: { "image/webp": {}, "image/jpeg": {}, "image/png": {} },
            },
            ...errors(404),
          },
        },
      },
      "/healthz": {
        get: {
          summary: "200 while an engine is ready; state, model, device",
          responses: { "200": { description: "Ready" }, "503": { description: "No engine ready" } },
        },
      },
      "/metrics": {
        get: {
          summary: "Prometheus metrics",
          responses: { "200": { description: "text/plain" }, ...errors(401) },
        },
      },
      "/v1/images/edits": {
        post: {
          summary: "OpenAI-compatible image edit (multipart, as the OpenAI SDKs send it)",
          description:
            "Runs the same jobs as POST /api/ai/queue and waits for them. OpenAI's field names (image, n, size, response_format, output_format, output_compression); any flux-kontext-dev parameter (num_inference_steps, guidance, seed, ...) may be sent as one more form field. Errors come in OpenAI's shape.",
          requestBody: {
            required: true,
            content: { "multipart/form-data": { schema: ref("OpenAIImageEditRequest") } },
          },
          responses: {
            "200": json(ref("OpenAIImagesResponse"), "The edited images"),
            ...openAIErrors(400, 401, 404, 409, 413, 415, 422, 429, 500, 503, 507),
          },
        },
      },
      "/v1/images/generations": {
        post: {
          summary: "OpenAI-compatible text-to-image (JSON, as the OpenAI SDKs send it)",
          description:
            "The same jobs as POST /api/ai/queue with a text-to-image body (POST /api/ai/images/generate's schema), waited for. OpenAI's field names (n, size, response_format, output_format, output_compression); any flux-kontext-dev text-to-image parameter (num_inference_steps, guidance, seed, ...) may be sent as one more field. Errors come in OpenAI's shape.",
          requestBody: {
            required: true,
            content: { "application/json": { schema: ref("OpenAIImageGenerateRequest") } },
          },
          responses: {
            "200": json(ref("OpenAIImagesResponse"), "The generated images"),
            ...openAIErrors(400, 401, 404, 409, 413, 415, 429, 500, 503, 507),
          },
        },
      },
      "/v1/models": {
        get: {
          summary: "Served models (OpenAI shape)",
          responses: { "200": json(ref("OpenAIModelList"), "Models"), ...openAIErrors(401) },
        },
      },
      "/v1/models/{id}": {
        get: {
          summary: "One model (OpenAI shape)",
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: { "200": json(ref("OpenAIModel"), "The model"), ...openAIErrors(401, 404) },
        },
      },
      "/openapi.json": {
        get: { summary: "This document", responses: { "200": { description: "OpenAPI 3.1" } } },
      },
    },
    components: {
      securitySchemes: {
        apiKey: {
          type: "http",
          scheme: "bearer",
          description:
            "A key from KONTEXT_API_KEYS. Required on /api, /v1 and /metrics when keys are on (always when the server listens beyond loopback).",
        },
      },
      schemas: {
        FluxKontextDevRequest: request,
        FluxKontextDevGenerateRequest: generateRequest,
        EditResponse: plain(EditResponse),
        QueueResponse: plain(QueueResponse),
        Generation: plain(GenerationView),
        GenerationList: plain(GenerationList),
        CancelResponse: plain(CancelResponse),
        HistoryItem: plain(HistoryItem),
        HistoryList: plain(HistoryList),
        HistoryStarRequest: plain(StarBody),
        DeleteResponse: plain(DeleteResponse),
        Model: plain(ModelView),
        ModelList: plain(ModelList),
        LoraList: plain(LoraList),
        Error: plain(ErrorEnvelope),
        QueuedEvent: plain(QueuedEvent),
        StartedEvent: plain(StartedEvent),
        ProgressEvent: plain(ProgressEvent),
        CompletedEvent: plain(CompletedEvent),
        OpenAIImageEditRequest: openAIEditFormSchema(),
        OpenAIImageGenerateRequest: plain(OpenAIGenerateFields),
        OpenAIImagesResponse: plain(OpenAIImagesResponse),
        OpenAIModel: plain(OpenAIModel),
        OpenAIModelList: plain(OpenAIModelList),
        OpenAIError: plain(OpenAIErrorBody),
      },
    },
  };
}
