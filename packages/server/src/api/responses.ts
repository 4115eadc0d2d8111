// Response shapes, for the OpenAPI document (the handlers build them in api/render.ts).
import { Type } from "@sinclair/typebox";
import { GENERATION_ERRORS } from "../errors.js";
import { STATUSES } from "../jobs/types.js";

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

export const ErrorEnvelope = Type.Object(
  {
    error: Type.Object({
      type: Type.String({ description: "Error code from the catalogue, e.g. invalid_request." }),
      title: Type.String({ description: "Short title for the code." }),
      detail: Type.String({ description: "What went wrong: the field, the rule and the value received." }),
      fields: Type.Optional(
        Type.Array(Type.String(), { description: "The offending fields, when a request was invalid." }),
      ),
    }),
    status: Type.Literal("error"),
    status_message: Type.String({ description: "Same as error.detail." }),
  },
  { description: "The hosted error envelope." },
);

const Timings = Type.Object(
  {
    queue: Type.Number({ description: "ms waiting in the queue" }),
    inference: Type.Number({ description: "ms in the engine" }),
    encode: Type.Number({ description: "ms encoding the output" }),
  },
  { description: "Kontext addition: where the time went." },
);

const PromptTokens = Type.Object(
  {
    t5: Type.Integer({
      description: "Tokens in the prompt for T5, the encoder the transformer reads (end token included).",
    }),
    t5_max: Type.Integer({ description: "How many T5 keeps (512); the rest is cut." }),
    clip: Type.Integer({ description: "Tokens in the prompt for CLIP (start and end tokens included)." }),
    clip_max: Type.Integer({ description: "How many CLIP keeps (77); only its pooled summary is used." }),
    truncated: Type.Boolean({
      description: "The prompt was longer than T5 keeps: only the first t5_max tokens were used.",
    }),
  },
  { description: "Kontext addition: how much of the prompt the text encoders read." },
);

const LoraReport = Type.Array(
  Type.Object({
    name: Type.String({ description: "The adapter's name in KONTEXT_LORA_DIR (as requested)." }),
    scale: Type.Number({ description: "The scale it ran at." }),
    sha256: Type.String({ description: "sha256 of the file that was applied." }),
    size_bytes: Type.Integer({ description: "The file's size." }),
    format: Type.Unsafe<string>({
      type: "string",
      enum: ["diffusers", "kohya", "bfl", "fal_kontext"],
      description: "The layout the file was read as.",
    }),
    matched: Type.Integer({ description: "The file's transformer modules that found a layer of the model." }),
    total: Type.Integer({ description: "The file's transformer modules." }),
    unmatched_prefixes: Type.Array(Type.String(), {
      description: "The other modules' names in the file's own naming, block numbers as *.",
    }),
    text_encoder_modules: Type.Integer({ description: "CLIP/T5 modules in the file: counted, not applied." }),
  }),
  {
    description:
      "Kontext addition, only when it ran with `loras`: each adapter as applied, in the request's order, with the LoRA doctor's report of its file (docs/loras.md).",
  },
);

/** What an output_resolution input edit with preserve_unedited changed (absent otherwise). */
const Change = {
  change_mask_url: Type.Optional(
    Nullable(
      Type.String({
        description:
          "Kontext addition (output_resolution input with preserve_unedited): the change mask, a greyscale PNG at the result's size (255 = edited, 0 = the original's pixels, between = the feathered edge); null once deleted.",
      }),
    ),
  ),
  changed_fraction: Type.Optional(
    Type.Number({
      description: "Kontext addition: the fraction of the frame the edit changed (0–1, before feathering).",
      minimum: 0,
      maximum: 1,
    }),
  ),
  whole_frame: Type.Optional(
    Type.Boolean({
      description:
        "Kontext addition: the edit covered most of the frame, so the result is the model's output upscaled, not blended.",
    }),
  ),
};

/** What a client should know about how its images were taken (absent when nothing). */
const Warnings = {
  warnings: Type.Optional(
    Type.Array(Type.String(), {
      description:
        "Kontext addition: what the server did with the request's images that a client should know, e.g. a mask_image of another size than input_image resized to it.",
    }),
  ),
};

export const EditResponse = Type.Object({
  model: Type.String({ description: "The model that ran." }),
  created: Type.Integer({ description: "Unix time (s) the image was made." }),
  images: Type.Array(
    Type.Object({
      url: Type.Optional(Type.String({ description: "Stable URL of the result (response_format url)." })),
      b64_json: Type.Optional(
        Type.String({ description: "The encoded image in base64 (response_format b64_json)." }),
      ),
    }),
  ),
  generation_id: Type.String({ description: "Kontext addition: the generation's id." }),
  seed: Type.Integer({ description: "Kontext addition: the seed used." }),
  width: Type.Integer({ description: "Kontext addition: output width." }),
  height: Type.Integer({ description: "Kontext addition: output height." }),
  output_format: Type.String({ description: "webp, jpg or png." }),
  timings: Timings,
  prompt_tokens: Type.Optional(PromptTokens),
  lora_report: Type.Optional(LoraReport),
  ...Change,
  ...Warnings,
});

export const QueueResponse = Type.Object({
  generations: Type.Array(
    Type.Object({
      generation_id: Type.String({ description: "Id to poll, stream or cancel." }),
      status: Type.Unsafe<string>({
        type: "string",
        enum: [...STATUSES],
        description:
          "queued; a request repeated with its Idempotency-Key gets the generations as they are now.",
      }),
    }),
  ),
});

export const GenerationView = Type.Object(
  {
    generation_id: Type.String(),
    model_name: Type.String(),
    prompt: Type.String(),
    media_type: Type.Literal("image"),
    status: Type.Unsafe<string>({
      type: "string",
      enum: [...STATUSES],
      description: "The generation's status.",
    }),
    result_url: Nullable(Type.String({ description: "Stable URL of the result once succeeded." })),
    error_message: Nullable(Type.String({ description: "Why it failed or was cancelled." })),
    error_code: Nullable(
      Type.String({
        description: `Why it failed or was cancelled, as a code from the error catalogue: ${Object.keys(GENERATION_ERRORS).join(", ")}.`,
      }),
    ),
    enqueued_at: Type.String({ description: "ISO 8601" }),
    started_at: Nullable(Type.String({ description: "ISO 8601" })),
    completed_at: Nullable(Type.String({ description: "ISO 8601" })),
    queue_position: Type.Union([Type.Integer(), Type.Null()], {
      description: "Queued ahead of it (0: next).",
    }),
    progress: Type.Number({ description: "0–1" }),
    step: Type.Integer(),
    total_steps: Type.Integer(),
    preview_url: Nullable(Type.String({ description: "Latest preview JPEG while processing." })),
    seed: Type.Integer(),
    width: Type.Union([Type.Integer(), Type.Null()]),
    height: Type.Union([Type.Integer(), Type.Null()]),
    prompt_tokens: Type.Optional(PromptTokens),
    lora_report: Type.Optional(LoraReport),
    ...Change,
    ...Warnings,
  },
  { description: "A generation; the request parameters are included as well.", additionalProperties: true },
);

export const GenerationList = Type.Object({ count: Type.Integer(), generations: Type.Array(GenerationView) });

export const CancelResponse = Type.Object({ status: Type.Literal("success"), generation_id: Type.String() });

/** One of a generation's images beside input_image, as the history shows it. */
const HistoryInput = Type.Object({
  field: Type.String({
    description: "The request field: input_image_2, input_image_3, input_image_4 or mask_image.",
  }),
  url: Type.String({ description: "The image as it was sent (GET /api/history/:id/inputs/:field)." }),
  thumbnail_url: Type.String({ description: "A small WebP of it (longest side 256 px)." }),
  width: Type.Integer({ description: "Its width as the engine saw it (oriented)." }),
  height: Type.Integer({ description: "Its height as the engine saw it (oriented)." }),
});

export const HistoryItem = Type.Object(
  {
    ...GenerationView.properties,
    parent_generation_id: Nullable(
      Type.String({
        description: "The generation whose result was this one's input: the previous step of its edit chain.",
      }),
    ),
    input_url: Nullable(
      Type.String({
        description:
          "The input image as it was sent (GET /api/history/:id/input); null for text-to-image, which has none.",
      }),
    ),
    input_width: Type.Union([Type.Integer(), Type.Null()], {
      description: "The input's width as the engine saw it (oriented); null for text-to-image.",
    }),
    input_height: Type.Union([Type.Integer(), Type.Null()], {
      description: "The input's height as the engine saw it (oriented); null for text-to-image.",
    }),
    starred: Type.Boolean({ description: "Starred in the history (PATCH /api/history/:id)." }),
    thumbnail_url: Nullable(
      Type.String({
        description:
          "A small WebP of the result (longest side 256 px); null unless succeeded and its result is kept.",
      }),
    ),
    input_thumbnail_url: Nullable(
      Type.String({
        description: "A small WebP of the input image (longest side 256 px); null for text-to-image.",
      }),
    ),
    references: Type.Array(HistoryInput, {
      description: "The reference images (input_image_2..4) in order; empty without any.",
    }),
    mask: Type.Union([HistoryInput, Type.Null()], { description: "The mask_image; null without one." }),
  },
  {
    description:
      "A generation as the workbench's history lists it: the queue's view, its edit chain, input and thumbnails.",
    additionalProperties: true,
  },
);

export const HistoryList = Type.Object({ count: Type.Integer(), generations: Type.Array(HistoryItem) });

export const DeleteResponse = Type.Object(
  { status: Type.Literal("success"), generation_id: Type.String() },
  { description: "The generation, its events and its files are deleted." },
);

export const ModelView = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal("model"),
    created: Type.Integer(),
    owned_by: Type.String(),
    display_name: Type.String(),
    description: Type.String(),
    capabilities: Type.Object({ input: Type.Array(Type.String()), output: Type.Array(Type.String()) }),
    endpoint: Type.String(),
    demo: Type.Boolean({
      description: "Kontext addition: true while the tiny demo model (noise) is loaded.",
    }),
    request_schema: Type.Object(
      {},
      { additionalProperties: true, description: "JSON Schema (2020-12) of the request." },
    ),
    json_request_schema: Type.Object(
      {},
      { additionalProperties: true, description: "Same as request_schema." },
    ),
    generate_endpoint: Type.String({
      description: "Kontext addition: the text-to-image endpoint (POST /api/ai/images/generate).",
    }),
    json_generate_request_schema: Type.Object(
      {},
      {
        additionalProperties: true,
        description:
          "Kontext addition: JSON Schema (2020-12) of a text-to-image request (POST /api/ai/images/generate, or POST /api/ai/queue without input_image): the edit's fields without input_image and those that need one.",
      },
    ),
  },
  { additionalProperties: true },
);

export const ModelList = Type.Object({ object: Type.Literal("list"), data: Type.Array(ModelView) });

// The data of each Server-Sent Event (edit streams, /api/ai/queue/:id/events, /api/events).
export const QueuedEvent = Type.Object(
  {
    generation_id: Type.String(),
    status: Type.Literal("queued"),
    model: Type.String(),
    queue_position: Type.Union([Type.Integer(), Type.Null()], {
      description: "Queued ahead of it, as it is when sent (a replayed event too: 0 once it left the queue).",
    }),
    retry: Type.Optional(Type.Boolean({ description: "Queued again after its engine died." })),
  },
  { description: "Data of `media_generation_queued`.", additionalProperties: true },
);

export const StartedEvent = Type.Object(
  {
    generation_id: Type.String(),
    status: Type.Literal("processing"),
    width: Type.Integer({ description: "Output width." }),
    height: Type.Integer({ description: "Output height." }),
    seed: Type.Integer(),
    total_steps: Type.Integer(),
  },
  { description: "Data of `media_generation_started`.", additionalProperties: true },
);

export const ProgressEvent = Type.Object(
  {
    generation_id: Type.String(),
    step: Type.Integer({ description: "Steps done (1..total_steps)." }),
    total_steps: Type.Integer(),
    progress: Type.Number({ description: "step / total_steps" }),
    preview: Type.Optional(Type.String({ description: "A small preview image as a data URI." })),
  },
  { description: "Data of `media_generation_progress`.", additionalProperties: true },
);

export const CompletedEvent = Type.Object(
  {
    generation_id: Type.String(),
    status: Type.Unsafe<"succeeded" | "failed" | "cancelled">({
      type: "string",
      enum: ["succeeded", "failed", "cancelled"],
    }),
    media_type: Type.Literal("image"),
    model: Type.String(),
    url: Type.Optional(Type.String({ description: "The result's stable URL (succeeded)." })),
    b64_json: Type.Optional(Type.String({ description: "The result inlined (response_format b64_json)." })),
    seed: Type.Optional(Type.Integer()),
    width: Type.Optional(Type.Integer()),
    height: Type.Optional(Type.Integer()),
    timings: Type.Optional(Type.Union([Timings, Type.Null()])),
    prompt_tokens: Type.Optional(PromptTokens),
    lora_report: Type.Optional(LoraReport),
    ...Change,
    ...Warnings,
    error: Type.Optional(
      Type.Union([Type.String(), Type.Null()], { description: "Why (failed, cancelled)." }),
    ),
    error_code: Type.Optional(
      Type.Union([Type.String(), Type.Null()], {
        description: `Why it failed or was cancelled: one of ${Object.keys(GENERATION_ERRORS).join(", ")}.`,
      }),
    ),
  },
  { description: "Data of `media_generation_completed`, the last event.", additionalProperties: true },
);
