// The request schema of flux-kontext-dev: the single source of truth for validation, the models
// endpoint's json_request_schema, the OpenAPI document and the workbench form.
import { type Static, Type } from "@sinclair/typebox";

export const MODEL_ID = "flux-kontext-dev";

export const MATCH_INPUT_IMAGE = "match_input_image";
export const ASPECT_RATIOS = [
  MATCH_INPUT_IMAGE,
  "1:1",
  "16:9",
  "21:9",
  "3:2",
  "2:3",
  "4:5",
  "5:4",
  "3:4",
  "4:3",
  "9:16",
  "9:21",
] as const;
/** Text-to-image has no input whose shape to keep. */
export const GENERATE_ASPECT_RATIOS = ASPECT_RATIOS.filter(
  (r): r is Exclude<(typeof ASPECT_RATIOS)[number], typeof MATCH_INPUT_IMAGE> => r !== MATCH_INPUT_IMAGE,
);
export const OUTPUT_FORMATS = ["webp", "jpg", "png"] as const;
export const RESPONSE_FORMATS = ["url", "b64_json"] as const;
export const OUTPUT_RESOLUTIONS = ["bucket", "input"] as const;
export const REFERENCE_METHODS = ["offset", "index"] as const;
export const WEBHOOK_EVENTS = ["start", "progress", "completed"] as const;
export const MAX_SEED = Number.MAX_SAFE_INTEGER; // the engine takes seeds from 0 to 2^53 − 1

const stringEnum = <T extends readonly string[]>(
  values: T,
  options: { description: string; default: T[number] } & Partial<typeof API_ONLY>,
) => Type.Unsafe<T[number]>({ type: "string", enum: [...values], ...options });

/**
 * The annotation on fields only API clients need (how the answer is delivered: inline, streamed,
 * to a webhook): the workbench's schema-driven form leaves them out. Validation ignores it
 * (schema/validate.ts declares the keyword to Ajv).
 */
export const FORM_ANNOTATION = "x-kontext-form";
const API_ONLY = { [FORM_ANNOTATION]: false } as const;

/** input_image_2..4: extra reference images, by the names BFL's own Kontext API gives them. */
const referenceImage = (n: 2 | 3 | 4) =>
  Type.String({
    description: `Kontext addition (BFL's Kontext API name): reference image ${n}, a further image the edit may draw on (a person, an object, a style), beside input_image, which is the one edited. Same forms as input_image.${n > 2 ? ` Needs input_image_${n - 1}.` : ""} Each is resized to its own bucket; where they sit for the model follows reference_method, and their order changes the output (docs/references.md). Each reference adds about as many tokens as the input image, so a step costs more (attention grows with the square of the sequence).`,
    minLength: 1,
  });

export const EditRequest = Type.Object(
  {
    model: Type.Optional(
      Type.String({
        description: "The model to run. Must name a served model (GET /api/ai/models).",
        default: MODEL_ID,
        minLength: 1,
      }),
    ),
    input_image: Type.String({
      description:
        "The image to edit: an http(s) URL, a data URI (data:image/png;base64,...) or raw base64. JPEG, PNG, GIF (first frame) or WebP.",
      minLength: 1,
    }),
    input_image_2: Type.Optional(referenceImage(2)),
    input_image_3: Type.Optional(referenceImage(3)),
    input_image_4: Type.Optional(referenceImage(4)),
    mask_image: Type.Optional(
      Type.String({
        description:
          "Kontext addition: where input_image may change (inpainting, as diffusers' FluxKontextInpaintPipeline): white = change, black = keep (grey counts by its luminance, split at half); a PNG with transparency counts by its alpha instead: transparent = change. Any size: one of another size than input_image is resized to it and the response says so in warnings. Same forms as input_image; needs aspect_ratio match_input_image. With strength below 1 the masked region starts from input_image noised to that level; with reference images, they alone condition the edit (input_image_2 is the pipeline's image_reference). With output_resolution input, nothing outside the mask changes. A mask with nothing to change is refused.",
        minLength: 1,
      }),
    ),
    prompt: Type.String({
      description: "The edit instruction, or a description of the wanted image.",
      minLength: 1,
      maxLength: 10_000,
      pattern: "\\S",
    }),
    aspect_ratio: Type.Optional(
      stringEnum(ASPECT_RATIOS, {
        description:
          "Shape of the output (about one megapixel, sides multiples of 16); match_input_image keeps the input's shape.",
        default: "match_input_image",
      }),
    ),
    num_inference_steps: Type.Optional(
      Type.Integer({
        description: "Denoising steps: more is slower and usually cleaner.",
        minimum: 4,
        maximum: 50,
        default: 28,
      }),
    ),
    guidance: Type.Optional(
      Type.Number({
        description: "Guidance scale: how strongly the prompt steers the edit.",
        minimum: 0,
        maximum: 10,
        default: 2.5,
      }),
    ),
    seed: Type.Optional(
      Type.Integer({
        description:
          "Random seed; the same seed and parameters give the same image. Random when left out; the seed used is always returned. Generation i of num_generations uses seed + i.",
        minimum: 0,
        maximum: MAX_SEED,
      }),
    ),
    output_format: Type.Optional(
      stringEnum(OUTPUT_FORMATS, { description: "Encoding of the output image.", default: "webp" }),
    ),
    output_quality: Type.Optional(
      Type.Integer({
        description: "Encoder quality for webp and jpg; ignored for png.",
        minimum: 0,
        maximum: 100,
        default: 80,
      }),
    ),
    disable_safety_checker: Type.Optional(
      Type.Boolean({
        description: "Skip the safety classifier that otherwise runs on every output.",
        default: false,
      }),
    ),
    fast: Type.Optional(
      Type.Boolean({
        description:
          "Kontext addition: fast mode. The transformer runs on some steps and the others are forecast from them (about 2.3× fewer transformer passes at 28 steps); slightly different pixels from the exact path. Same seed, same result.",
        default: false,
      }),
    ),
    negative_prompt: Type.Optional(
      Type.String({
        description:
          "Kontext addition: what the image should not show. Used only with true_cfg_scale above 1, as diffusers' FluxKontextPipeline; the empty string counts as a negative prompt.",
        maxLength: 10_000,
      }),
    ),
    true_cfg_scale: Type.Optional(
      Type.Number({
        description:
          "Kontext addition: true classifier-free guidance with negative_prompt: 1 is off. Above 1 (with a negative_prompt) the transformer runs twice per step, so each step costs about double.",
        minimum: 1,
        maximum: 10,
        default: 1,
      }),
    ),
    strength: Type.Optional(
      Type.Number({
        description:
          "Kontext addition: how much of the input image is redrawn, above 0 up to 1. 1 starts from pure noise (a plain edit); below 1 the edit starts from input_image noised to that level and runs only the last part of the schedule (img2img; needs aspect_ratio match_input_image). A strength that leaves no step to run is refused.",
        exclusiveMinimum: 0,
        maximum: 1,
        default: 1,
      }),
    ),
    reference_method: Type.Optional(
      stringEnum(REFERENCE_METHODS, {
        description:
          "Kontext addition: where reference images sit in the model's position space: offset (all at index 1, side by side, ComfyUI's default for Kontext) or index (each its own index). See docs/references.md.",
        default: "offset",
      }),
    ),
    loras: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({
              description:
                "A LoRA file in KONTEXT_LORA_DIR, relative to it, without .safetensors (GET /api/ai/models/flux-kontext-dev/loras lists them).",
              minLength: 1,
              maxLength: 512,
            }),
            scale: Type.Optional(
              Type.Number({ description: "The adapter's weight.", minimum: -4, maximum: 4, default: 1 }),
            ),
          },
          { additionalProperties: false },
        ),
        {
          description:
            "Kontext addition: LoRA adapters applied for this request only, each with its scale. Files come from KONTEXT_LORA_DIR; a name that is not listed, or a file that matches the model's layers poorly, is refused.",
          maxItems: 4,
          default: [],
        },
      ),
    ),
    output_resolution: Type.Optional(
      stringEnum(OUTPUT_RESOLUTIONS, {
        description:
          "Kontext addition: bucket returns the model's ~1 MP image; input returns the edit at the input's own width and height (needs aspect_ratio match_input_image, inputs up to 8192 px a side).",
        default: "bucket",
      }),
    ),
    preserve_unedited: Type.Optional(
      Type.Boolean({
        description:
          "Kontext addition, with output_resolution input only (default true there): pixels the edit did not change are the original's, bit for bit, and a change mask is returned (docs/preserve.md).",
      }),
    ),
    response_format: Type.Optional(
      stringEnum(RESPONSE_FORMATS, {
        description: "url: the result is served at a stable URL; b64_json: the image is inlined as base64.",
        default: "url",
        ...API_ONLY,
      }),
    ),
    num_generations: Type.Optional(
      Type.Integer({
        description:
          "Images to generate, each its own generation. Queue only: POST /api/ai/images/edit and POST /api/ai/images/generate take 1.",
        minimum: 1,
        maximum: 4,
        default: 1,
      }),
    ),
    stream: Type.Optional(
      Type.Boolean({
        description:
          "Kontext addition, POST /api/ai/images/edit and POST /api/ai/images/generate only: answer a Server-Sent Events stream of queued, started, progress and completed events (same as Accept: text/event-stream).",
        default: false,
        ...API_ONLY,
      }),
    ),
    webhook: Type.Optional(
      Type.String({
        description:
          "Kontext addition: an http(s) URL that receives this generation's events as POSTs signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature), retried with backoff. The same address rules as input_image URLs apply. Needs KONTEXT_WEBHOOK_SECRET.",
        format: "uri",
        maxLength: 2048,
        ...API_ONLY,
      }),
    ),
    webhook_events_filter: Type.Optional(
      Type.Array(
        Type.Unsafe<(typeof WEBHOOK_EVENTS)[number]>({ type: "string", enum: [...WEBHOOK_EVENTS] }),
        {
          description:
            "Kontext addition: which events the webhook receives: start, progress (every step), completed.",
          minItems: 1,
          uniqueItems: true,
          default: ["completed"],
          ...API_ONLY,
        },
      ),
    ),
  },
  {
    $id: "FluxKontextDevRequest",
    title: "flux-kontext-dev request",
    description: "Parameters of an image edit with FLUX.1 Kontext [dev].",
    additionalProperties: false,
  },
);

/** The reference images beside input_image, in the order the engine gets them. */
export const REFERENCE_FIELDS = ["input_image_2", "input_image_3", "input_image_4"] as const;
/** The optional image fields: ingested and stored like input_image, kept out of the stored parameters. */
export const IMAGE_FIELDS = [...REFERENCE_FIELDS, "mask_image"] as const;
type ImageField = (typeof IMAGE_FIELDS)[number];

/**
 * The fields only an edit has: its input image and what works from it (the input's own size,
 * its pixels kept, img2img strength, reference images and a mask, where references sit). Text-to-image has none of them.
 */
export const EDIT_ONLY_FIELDS = [
  "input_image",
  ...IMAGE_FIELDS,
  "strength",
  "reference_method",
  "output_resolution",
  "preserve_unedited",
] as const;

// Every other field is the edit's, as it is; only aspect_ratio changes (no input to match).
const { model, prompt, ...sharedRest } = Type.Omit(EditRequest, [
  ...EDIT_ONLY_FIELDS,
  "aspect_ratio",
]).properties;

/**
 * POST /api/ai/images/generate (text-to-image): the edit's schema without the input image and
 * the fields that need one; aspect_ratio without match_input_image, 1:1 by default.
 */
export const GenerateRequest = Type.Object(
  {
    model,
    prompt,
    aspect_ratio: Type.Optional(
      stringEnum(GENERATE_ASPECT_RATIOS, {
        description: "Shape of the image (about one megapixel, sides multiples of 16).",
        default: "1:1",
      }),
    ),
    ...sharedRest,
  },
  {
    $id: "FluxKontextDevGenerateRequest",
    title: "flux-kontext-dev text-to-image request",
    description:
      "Parameters of a text-to-image generation with FLUX.1 Kontext [dev] (no input image): POST /api/ai/images/generate, or POST /api/ai/queue with a body without input_image.",
    additionalProperties: false,
  },
);

/** A request as received: only input_image and prompt must be present. */
export type EditRequestBody = Static<typeof EditRequest>;
/** A text-to-image request as received: only prompt must be present. */
export type GenerateRequestBody = Static<typeof GenerateRequest>;

/** Fields that stay optional once defaults are applied. */
type LeftOptional =
  | "seed"
  | "negative_prompt"
  | "preserve_unedited"
  | "webhook"
  | "webhook_events_filter"
  | ImageField;
interface OptionalParams {
  seed?: number;
  negative_prompt?: string;
  webhook?: string;
  webhook_events_filter?: Array<(typeof WEBHOOK_EVENTS)[number]>;
}

/** A request with every default applied. Seed stays optional (random when absent). */
export type EditParams = Required<Omit<EditRequestBody, LeftOptional>> &
  OptionalParams & {
    /** Only with output_resolution input; left out: true there. */
    preserve_unedited?: boolean;
    input_image_2?: string;
    input_image_3?: string;
    input_image_4?: string;
    mask_image?: string;
  };

/** A text-to-image request with every default applied. */
export type GenerateParams = Required<Omit<GenerateRequestBody, LeftOptional>> & OptionalParams;

/** What a submission runs: an edit, or a text-to-image generation (no input_image). */
export type RequestParams = EditParams | GenerateParams;

export const isEdit = (p: RequestParams): p is EditParams => "input_image" in p;

/** The body with each field it leaves out at its schema's default. */
function defaultsOf<T>(schema: { properties: Record<string, object> }, body: object): T {
  const out: Record<string, unknown> = {};
  for (const [key, prop] of Object.entries(schema.properties)) {
    const value = (body as Record<string, unknown>)[key];
    if (value !== undefined) out[key] = value;
    else if ("default" in prop) out[key] = prop.default;
  }
  return out as T;
}

export function withDefaults(body: EditRequestBody): EditParams {
  return defaultsOf<EditParams>(EditRequest, body);
}

export function generateWithDefaults(body: GenerateRequestBody): GenerateParams {
  return defaultsOf<GenerateParams>(GenerateRequest, body);
}
