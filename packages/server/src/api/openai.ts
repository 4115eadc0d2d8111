// The OpenAI-compatible surface: POST /v1/images/edits (multipart, as the official SDKs send it),
// POST /v1/images/generations (JSON: text-to-image) and GET /v1/models. A request is translated
// into a hosted request body and goes through the same schema, the same submit path and the same
// jobs as POST /api/ai/queue; only the field names, the response and the error shape are OpenAI's.
// Differences are listed in README.
import { createHash } from "node:crypto";
import multipart from "@fastify/multipart";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import { ApiError, type ErrorBody, fieldInvalid, forImageField, generationFailure } from "../errors.js";
import { maskFromTransparency } from "../images/codec.js";
import type { Generation } from "../jobs/types.js";
import {
  ASPECT_RATIOS,
  EDIT_ONLY_FIELDS,
  EditRequest,
  GenerateRequest,
  MATCH_INPUT_IMAGE,
} from "../schema/flux-kontext-dev.js";
import { findModel, MODELS } from "../schema/models.js";
import { showValue, validateBody } from "../schema/validate.js";
import { type ImageUploads, submit } from "./generations.js";

const HOSTED = EditRequest.properties;

/** OpenAI's output_format names; `jpeg` is Kontext's `jpg`. */
const OPENAI_OUTPUT_FORMATS = ["png", "jpeg", "webp"] as const;

/**
 * Hosted fields the form takes under OpenAI's names (image, n, size, output_format,
 * output_compression) or not at all (stream: use the hosted endpoint's event stream).
 */
const RENAMED = new Set([
  "input_image",
  "num_generations",
  "aspect_ratio",
  "output_format",
  "output_quality",
  "stream",
]);
const passThroughOf = (props: object) =>
  Object.fromEntries(Object.entries(props).filter(([k]) => !RENAMED.has(k)));
const passThrough = passThroughOf(HOSTED);

type Rule = { accept?: readonly string[]; reason: string };

/** stream and partial_images, pointing at the hosted endpoint that streams what the /v1 route cannot. */
const streamRules = (hosted: string): Record<string, Rule> => ({
  stream: {
    accept: ["false"],
    reason: `not supported here; stream with POST ${hosted} and Accept: text/event-stream (progress and previews)`,
  },
  partial_images: {
    accept: ["0"],
    reason: `not supported here; POST ${hosted} streams progress previews`,
  },
});

/** OpenAI parameters Kontext cannot honour: refused with the reason rather than ignored. */
const UNSUPPORTED: Record<string, { accept?: readonly string[]; reason: string }> = {
  quality: {
    accept: ["auto"],
    reason: "Kontext has no quality levels; set num_inference_steps (4–50) instead",
  },
  background: { accept: ["auto", "opaque"], reason: "Kontext outputs are always opaque" },
  moderation: { accept: ["auto"], reason: "the safety checker is set with disable_safety_checker" },
  input_fidelity: { reason: "Kontext has no input_fidelity; leave it out" },
  ...streamRules("/api/ai/images/edit"),
};

/**
 * The same rules on /v1/images/generations, and DALL·E 3's style; there is no image to mask or
 * keep, and an edit's own fields are refused pointing at the edits route.
 */
const GENERATE_UNSUPPORTED: Record<string, Rule> = {
  ...Object.fromEntries(["quality", "background", "moderation"].map((k) => [k, UNSUPPORTED[k] as Rule])),
  style: { reason: "Kontext has no styles; describe the style in the prompt" },
  ...streamRules("/api/ai/images/generate"),
  ...Object.fromEntries(
    EDIT_ONLY_FIELDS.map((k) => [
      k,
      { reason: "an edit's field: text-to-image has no input image (edit with POST /v1/images/edits)" },
    ]),
  ),
};

/** OpenAI's parameters that both image routes take, with Kontext's limits. */
const OPENAI_FIELDS = {
  n: Type.Optional(
    Type.Integer({
      description: "How many images to make (each its own generation). OpenAI allows up to 10; Kontext 1–4.",
      minimum: HOSTED.num_generations.minimum,
      maximum: HOSTED.num_generations.maximum,
      default: 1,
    }),
  ),
  response_format: Type.Optional(
    Type.Unsafe<"url" | "b64_json">({
      ...HOSTED.response_format,
      description: "b64_json (default, as OpenAI's GPT image models) or url (a stable URL on this server).",
      default: "b64_json",
    }),
  ),
  output_format: Type.Optional(
    Type.Unsafe<(typeof OPENAI_OUTPUT_FORMATS)[number]>({
      type: "string",
      enum: [...OPENAI_OUTPUT_FORMATS],
      description: "Encoding of the output image.",
      default: "png",
    }),
  ),
  output_compression: Type.Optional(
    Type.Integer({
      description: "Encoder quality for webp and jpeg, 0–100 (Kontext's output_quality); ignored for png.",
      minimum: HOSTED.output_quality.minimum,
      maximum: HOSTED.output_quality.maximum,
    }),
  ),
  user: Type.Optional(Type.String({ description: "Accepted for compatibility and not used." })),
  quality: Type.Optional(Type.String({ description: "Only auto (Kontext has no quality levels)." })),
  background: Type.Optional(Type.String({ description: "auto or opaque (outputs are always opaque)." })),
  moderation: Type.Optional(Type.String({ description: "Only auto; see disable_safety_checker." })),
};

/** size's ratios: every aspect_ratio but match_input_image. */
const SIZE_RATIOS = ASPECT_RATIOS.filter((r) => r.includes(":")).join(", ");

/** The form fields other than the image file, validated with the same rules as the hosted schema. */
export const OpenAIEditFields = Type.Object(
  {
    ...passThrough,
    prompt: HOSTED.prompt,
    size: Type.Optional(
      Type.String({
        description: `auto (the input's shape) or WIDTHxHEIGHT whose ratio is one of ${SIZE_RATIOS}, e.g. 1024x1024, 1536x1024, 1024x1536. Picks the shape: the output stays about one megapixel.`,
        minLength: 1,
        default: "auto",
      }),
    ),
    ...OPENAI_FIELDS,
    stream: Type.Optional(
      Type.String({
        description: "Only false: stream with POST /api/ai/images/edit (Accept: text/event-stream).",
      }),
    ),
    partial_images: Type.Optional(Type.String({ description: "Only 0." })),
  },
  { additionalProperties: false },
);

/** The multipart request as the OpenAPI document shows it: the image file plus the fields. */
export function openAIEditFormSchema(): Record<string, unknown> {
  const fields = JSON.parse(JSON.stringify(OpenAIEditFields)) as { properties: object; required: string[] };
  return {
    ...fields,
    properties: {
      image: {
        type: "string",
        contentMediaType: "application/octet-stream",
        description: `The image to edit, and up to ${MAX_IMAGES - 1} reference images: ${MAX_IMAGES} PNG, JPEG, WebP or GIF files at most (\`image\` or \`image[]\`, repeated). The first is input_image, the others input_image_2..${MAX_IMAGES} in their order.`,
      },
      mask: {
        type: "string",
        contentMediaType: "image/png",
        description:
          "Where to edit, as OpenAI defines it: an image with an alpha channel whose fully transparent pixels mark the area to change (Kontext's mask_image; any other pixel is kept). Any size: it is resized to the first image's. Needs size auto.",
      },
      ...fields.properties,
    },
    required: ["image", ...fields.required],
  };
}

/** POST /v1/images/generations' JSON body: OpenAI's parameters and any text-to-image field. */
export const OpenAIGenerateFields = Type.Object(
  {
    ...passThroughOf(GenerateRequest.properties),
    prompt: GenerateRequest.properties.prompt,
    size: Type.Optional(
      Type.String({
        description: `auto (${GenerateRequest.properties.aspect_ratio.default}, text-to-image's default shape) or WIDTHxHEIGHT whose ratio is one of ${SIZE_RATIOS}, e.g. 1024x1024, 1536x1024, 1024x1536. Picks the shape: the output stays about one megapixel.`,
        minLength: 1,
        default: "auto",
      }),
    ),
    ...OPENAI_FIELDS,
    stream: Type.Optional(
      Type.Boolean({
        description: "Only false: stream with POST /api/ai/images/generate (Accept: text/event-stream).",
      }),
    ),
    partial_images: Type.Optional(Type.Integer({ description: "Only 0." })),
  },
  {
    description:
      "OpenAI's parameters (prompt, model, n, size, response_format, output_format, output_compression, ...) and any flux-kontext-dev text-to-image field (num_inference_steps, guidance, seed, ...).",
    additionalProperties: false,
  },
);

/** OpenAI's own parameters of images.generate (the SDK's types allow null for them). */
const OPENAI_GENERATE_PARAMS = new Set([
  "model",
  "size",
  ...Object.keys(OPENAI_FIELDS),
  ...["style", "stream", "partial_images"],
]);

// Response shapes, for the OpenAPI document.
const OpenAIImage = Type.Object({
  b64_json: Type.Optional(Type.String({ description: "The image in base64 (response_format b64_json)." })),
  url: Type.Optional(Type.String({ description: "Its stable URL on this server (response_format url)." })),
  generation_id: Type.String({ description: "Kontext addition: the generation's id." }),
  seed: Type.Integer({ description: "Kontext addition: the seed used." }),
});

export const OpenAIImagesResponse = Type.Object({
  created: Type.Integer({ description: "Unix time (s) the first image was made." }),
  data: Type.Array(OpenAIImage),
  output_format: Type.String({ description: "png, jpeg or webp." }),
  size: Type.String({ description: "WIDTHxHEIGHT of the output." }),
  background: Type.Literal("opaque"),
});

export const OpenAIModel = Type.Object({
  id: Type.String(),
  object: Type.Literal("model"),
  created: Type.Integer(),
  owned_by: Type.String(),
});

export const OpenAIModelList = Type.Object({ object: Type.Literal("list"), data: Type.Array(OpenAIModel) });

export const OpenAIErrorBody = Type.Object(
  {
    error: Type.Object({
      message: Type.String({ description: "What went wrong: the field, the rule and the value received." }),
      type: Type.String({
        description: "invalid_request_error, authentication_error, rate_limit_error, ...",
      }),
      param: Type.Union([Type.String(), Type.Null()], { description: "The offending form field." }),
      code: Type.String({ description: "Kontext's error code (the catalogue's), e.g. invalid_request." }),
    }),
  },
  { description: "OpenAI's error shape, on /v1 routes." },
);

/** `image[]` files: input_image, then the reference images input_image_2..4. */
const MAX_IMAGES = 4;
const IMAGE_SLOTS = ["input_image", "input_image_2", "input_image_3", "input_image_4"] as const;

interface Form {
  /** the `image` / `image[]` files, in order */
  image: Buffer[];
  /** the `mask` file */
  mask: Buffer | null;
  /** Every other part by name (`x[]` counted as `x`). */
  fields: Map<string, string[]>;
}

/** The parts sent as files. */
const FILE_PARTS = new Set(["image", "mask"]);

/** Every part name the form knows: the files, the fields, and the OpenAI parameters refused with a reason. */
const KNOWN_PARTS = new Set([
  ...FILE_PARTS,
  ...Object.keys(OpenAIEditFields.properties),
  ...Object.keys(UNSUPPORTED),
]);

/**
 * Why a part is refused as soon as its header is read (its content is never read), or null:
 * an unknown name, a file where a text field belongs or the other way round, a fifth image, a
 * second mask.
 */
function refusedPart(name: string, isFile: boolean, value: string, form: Form): ApiError | null {
  if (!KNOWN_PARTS.has(name)) {
    return fieldInvalid(
      name,
      "unknown field (not a parameter of this model)",
      isFile ? '"(file)"' : showValue(value),
    );
  }
  if (FILE_PARTS.has(name)) {
    if (!isFile) return fieldInvalid(name, "send it as a file, not a text field", showValue(value));
    if (name === "image" && form.image.length === MAX_IMAGES)
      return fieldInvalid(
        "image",
        `at most ${MAX_IMAGES} files: the image to edit and up to ${MAX_IMAGES - 1} reference images (input_image_2..${MAX_IMAGES})`,
        `${MAX_IMAGES + 1} files`,
      );
    if (name === "mask" && form.mask)
      return new ApiError("field_repeated", { field: "mask", count: 2 }, { fields: ["mask"] });
    return null;
  }
  if (!isFile) return null;
  const rule = UNSUPPORTED[name];
  return fieldInvalid(name, rule ? rule.reason : "send it as a text field, not a file", '"(file)"');
}

/**
 * Reads the form, holding KONTEXT_BODY_LIMIT_BYTES over the whole body (every part, headers and
 * boundaries counted as the bytes arrive: 413 as soon as it is passed), and refusing a part that
 * is no known field, or a file where a text field belongs, before reading its content. A refused
 * form's remaining bytes are read and dropped, so the client gets the answer.
 */
async function readForm(req: FastifyRequest, limit: number): Promise<Form> {
  if (Number(req.headers["content-length"]) > limit) throw new ApiError("body_too_large", { limit });
  const form: Form = { image: [], mask: null, fields: new Map() };
  let received = 0;
  const count = (c: Buffer) => {
    received += c.length;
  };
  const tooLarge = () => new ApiError("body_too_large", { limit });
  const parts = req.parts()[Symbol.asyncIterator]();
  let counting = false;
  try {
    for (;;) {
      const next = parts.next(); // the first call pipes the request into the parser
      if (!counting) {
        req.raw.on("data", count);
        counting = true;
      }
      const { value: part, done } = await next;
      if (done) break;
      if (received > limit) throw tooLarge();
      const name = part.fieldname.replace(/\[\]$/, "");
      const isFile = part.type === "file";
      const refused = refusedPart(name, isFile, isFile ? "" : String(part.value), form);
      if (refused) throw refused;
      if (part.type === "file") {
        const chunks: Buffer[] = [];
        for await (const chunk of part.file) {
          if (received > limit) throw tooLarge();
          chunks.push(chunk as Buffer);
        }
        if (part.file.truncated || received > limit) throw tooLarge();
        if (name === "mask") form.mask = Buffer.concat(chunks);
        else form.image.push(Buffer.concat(chunks));
      } else {
        form.fields.set(name, [...(form.fields.get(name) ?? []), String(part.value)]);
      }
    }
    if (received > limit) throw tooLarge();
  } catch (err) {
    // stop parsing; what is left of the body is read and dropped (a destroyed socket would lose the answer)
    void parts.return?.(undefined);
    req.raw.unpipe();
    req.raw.resume();
    const code = (err as { code?: string }).code;
    if (code === "FST_REQ_FILE_TOO_LARGE") throw tooLarge();
    if (code === "FST_FILES_LIMIT" || code === "FST_FIELDS_LIMIT" || code === "FST_PARTS_LIMIT") {
      throw new ApiError("form_too_many_parts", { reason: (err as Error).message });
    }
    if (err instanceof ApiError) throw err;
    // busboy's parse errors (no boundary, a truncated body): the client sent a broken form
    throw new ApiError("form_unreadable", { reason: (err as Error).message });
  } finally {
    req.raw.removeListener("data", count);
  }
  return form;
}

/** Form strings as the types the schema asks for, so the shared validator can check them. */
function typedFields(fields: Map<string, string[]>): Record<string, unknown> {
  const props = OpenAIEditFields.properties as Record<string, { type?: string }>;
  const out: Record<string, unknown> = {};
  for (const [name, values] of fields) {
    const type = props[name]?.type;
    if (type === "array") {
      out[name] = values;
      continue;
    }
    if (values.length > 1) {
      throw new ApiError("field_repeated", { field: name, count: values.length }, { fields: [name] });
    }
    const v = values[0] as string;
    if ((type === "integer" || type === "number") && /^\s*-?\d+(\.\d+)?\s*$/.test(v)) out[name] = Number(v);
    else if (type === "boolean" && (v === "true" || v === "false")) out[name] = v === "true";
    else out[name] = v;
  }
  return out;
}

function refuseUnsupported(fields: Record<string, unknown>, rules: Record<string, Rule> = UNSUPPORTED): void {
  for (const [name, rule] of Object.entries(rules)) {
    if (!(name in fields)) continue;
    const value = fields[name];
    if (rule.accept?.includes(String(value))) continue;
    throw fieldInvalid(name, rule.reason, JSON.stringify(value));
  }
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * OpenAI's size as Kontext's aspect_ratio: the shape of WIDTHxHEIGHT, or for auto `auto`: the
 * input's shape on an edit, text-to-image's default shape on a generation.
 */
export function aspectRatioOfSize(size: string, auto: string = MATCH_INPUT_IMAGE): string {
  if (size === "auto") return auto;
  const m = /^(\d{1,5})x(\d{1,5})$/.exec(size);
  const w = Number(m?.[1]);
  const h = Number(m?.[2]);
  const ratio = m && w > 0 && h > 0 ? `${w / gcd(w, h)}:${h / gcd(w, h)}` : null;
  if (ratio && (ASPECT_RATIOS as readonly string[]).includes(ratio)) return ratio;
  throw fieldInvalid(
    "size",
    `must be auto or WIDTHxHEIGHT with a ratio of ${SIZE_RATIOS} (e.g. 1024x1024, 1536x1024, 1024x1536)`,
    JSON.stringify(size),
  );
}

/** Uploaded bytes as a request field names them: by hash (so an Idempotency-Key's request hash covers them). */
const uploadRef = (bytes: Buffer) => `upload:sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/**
 * OpenAI's parameters under their hosted names, the same on both routes (the hosted schema checks
 * the result again on submit). `auto`: what size auto means on the route.
 */
function hostedFields(
  fields: Record<string, unknown>,
  rules: Record<string, Rule>,
  auto: string,
): Record<string, unknown> {
  const { n, size, response_format, output_format, output_compression, ...rest } = fields;
  // user, quality, background and moderation are accepted (refuseUnsupported checked them) and unused
  for (const name of ["user", ...Object.keys(rules)]) delete rest[name];
  const body: Record<string, unknown> = {
    ...rest,
    num_generations: n ?? 1,
    aspect_ratio: aspectRatioOfSize((size as string | undefined) ?? "auto", auto),
    response_format: response_format ?? "b64_json",
    output_format: output_format === "jpeg" ? "jpg" : (output_format ?? "png"),
  };
  if (output_compression !== undefined) body.output_quality = output_compression;
  return body;
}

/**
 * The OpenAI form as a hosted request body. The images and the mask go to submit as bytes
 * (`uploads`), which the body's fields name by hash.
 */
function hostedBody(uploads: ImageUploads, fields: Record<string, unknown>): Record<string, unknown> {
  return {
    ...hostedFields(fields, UNSUPPORTED, MATCH_INPUT_IMAGE),
    ...Object.fromEntries(
      Object.entries(uploads).map(([field, bytes]) => [field, uploadRef(bytes as Buffer)]),
    ),
  };
}

/**
 * OpenAI's mask as Kontext's mask_image: fully transparent = edit, everything else kept. 400
 * naming `mask` for one without an alpha channel (OpenAI's rule) or with no fully transparent pixel.
 */
async function maskImageOf(mask: Buffer, maxPixels: number): Promise<Buffer> {
  const converted = await maskFromTransparency(mask, maxPixels).catch((err: unknown) => {
    throw forImageField(err, "mask");
  });
  if (!converted)
    throw fieldInvalid(
      "mask",
      "must have an alpha channel: its fully transparent pixels mark where to edit",
      "an image without transparency",
    );
  if (converted.changed === 0)
    throw fieldInvalid(
      "mask",
      "nothing to edit: no pixel is fully transparent (transparent = edit)",
      "an opaque mask",
    );
  return converted.png;
}

/** The JSON body with OpenAI's parameters that are null left out: null means the default there. */
function jsonFields(body: unknown): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError("body_not_object", { got: Array.isArray(body) ? "an array" : showValue(body) });
  }
  return Object.fromEntries(
    Object.entries(body).filter(([k, v]) => !(v === null && OPENAI_GENERATE_PARAMS.has(k))),
  );
}

/** The JSON body as a hosted text-to-image request: size auto is its default shape. */
function generateBody(fields: Record<string, unknown>): Record<string, unknown> {
  return hostedFields(fields, GENERATE_UNSUPPORTED, GenerateRequest.properties.aspect_ratio.default);
}

async function openAIImage(ctx: AppContext, g: Generation, base: string): Promise<Record<string, unknown>> {
  const image: Record<string, unknown> = {};
  if (g.params.response_format === "url") image.url = `${base}${ctx.queue.resultUrlPath(g)}`;
  else {
    const bytes = await ctx.files.readResult(g.resultFile as string);
    if (!bytes) throw new ApiError("result_not_found", { name: g.resultFile ?? "" });
    image.b64_json = bytes.toString("base64");
  }
  // Kontext additions, per image
  return { ...image, generation_id: g.id, seed: g.seed };
}

/** Waits for the generations and answers as OpenAI's images endpoints do: {created, data, ...}. */
async function imagesResponse(ctx: AppContext, req: FastifyRequest, gens: Generation[]) {
  const done = await Promise.all(gens.map((g) => ctx.queue.waitFor(g.id)));
  for (const g of done) {
    const err = generationFailure(g);
    if (err) throw err;
  }
  const base = ctx.baseUrl(req);
  const first = done[0] as Generation;
  return {
    created: Math.floor((first.completedAt ?? Date.now()) / 1000),
    data: await Promise.all(done.map((g) => openAIImage(ctx, g, base))),
    output_format: first.params.output_format === "jpg" ? "jpeg" : first.params.output_format,
    size: `${first.width}x${first.height}`,
    background: "opaque",
  };
}

const OPENAI_ERROR_TYPES: Record<number, string> = {
  401: "authentication_error",
  403: "permission_error",
  404: "invalid_request_error",
  429: "rate_limit_error",
};

/** Hosted field names in error messages, as the OpenAI form calls them. */
const OPENAI_NAMES: Record<string, string> = {
  input_image: "image",
  input_image_2: "image",
  input_image_3: "image",
  input_image_4: "image",
  mask_image: "mask",
  num_generations: "n",
  aspect_ratio: "size",
  output_quality: "output_compression",
};

/** The hosted error envelope as OpenAI's: {error: {message, type, param, code}}. */
export function openAIError(status: number, body: ErrorBody): Record<string, unknown> {
  const { detail, fields, type } = body.error;
  // Field errors start with the field's name ("n: must be ...", "input_image: could not ...").
  const field = fields?.[0] ?? (type.startsWith("input_image") ? "input_image" : null);
  const param = field ? (OPENAI_NAMES[field] ?? field) : null;
  const reference = /^input_image_(\d)$/.exec(field ?? ""); // which of the image[] files
  const shown = reference ? `image[${Number(reference[1]) - 1}]` : param;
  return {
    error: {
      message: field && param ? detail.replace(`${field}: `, `${shown}: `) : detail,
      type: OPENAI_ERROR_TYPES[status] ?? (status >= 500 ? "server_error" : "invalid_request_error"),
      param,
      code: type,
    },
  };
}

function openAIModel(id: string, created: number, ownedBy: string) {
  return { id, object: "model", created, owned_by: ownedBy };
}

export function registerOpenAI(app: FastifyInstance, ctx: AppContext): void {
  void app.register(
    async (v1) => {
      await v1.register(multipart, {
        // files: 4 images and a mask; one more reaches refusedPart, which names it
        limits: { fileSize: ctx.config.bodyLimitBytes, files: MAX_IMAGES + 2, fields: 64, parts: 70 },
      });
      // Errors on these routes (the app's error handler, auth, 404) leave in OpenAI's shape.
      v1.addHook("onSend", async (_req, reply, payload) => {
        if (reply.statusCode < 400 || typeof payload !== "string") return payload;
        try {
          const body = JSON.parse(payload) as ErrorBody;
          if (body?.status !== "error" || !body.error) return payload;
          return JSON.stringify(openAIError(reply.statusCode, body));
        } catch {
          return payload;
        }
      });
      v1.setNotFoundHandler((req, reply) => {
        const e = new ApiError("route_not_found", { method: req.method, url: req.url.split("?")[0] ?? "" });
        void reply.code(e.status).send(e.toBody());
      });

      v1.post("/images/edits", async (req) => {
        if (!req.isMultipart()) {
          throw new ApiError("multipart_required", { contentType: req.headers["content-type"] ?? "none" });
        }
        const form = await readForm(req, ctx.config.bodyLimitBytes);
        const fields = typedFields(form.fields);
        refuseUnsupported(fields);
        validateBody(OpenAIEditFields, fields);
        if (form.image.length === 0)
          throw fieldInvalid(
            "image",
            "required, one PNG, JPEG, WebP or GIF file sent as a multipart file",
            "none",
          );
        const uploads: ImageUploads = {};
        form.image.forEach((bytes, i) => {
          uploads[IMAGE_SLOTS[i] as (typeof IMAGE_SLOTS)[number]] = bytes;
        });
        if (form.mask) uploads.mask_image = await maskImageOf(form.mask, ctx.config.maxInputPixels);
        const gens = await submit(ctx, hostedBody(uploads, fields), "queue", req, uploads);
        // Like the hosted sync edit: the generations run whether or not this client stays.
        return imagesResponse(ctx, req, gens);
      });

      // Text-to-image, submitted to the queue as the edits route does (the sync kinds take one
      // image; the queue takes n up to 4). The body has no input_image and fits the generate
      // schema (OpenAIGenerateFields holds its rules), which is how the queue tells it from an edit.
      v1.post("/images/generations", async (req) => {
        if (req.isMultipart()) {
          req.raw.resume(); // the form is not read; dropped so the client gets the answer
          throw new ApiError("unsupported_media_type", { contentType: req.headers["content-type"] ?? "" });
        }
        const fields = jsonFields(req.body);
        refuseUnsupported(fields, GENERATE_UNSUPPORTED);
        validateBody(OpenAIGenerateFields, fields);
        const gens = await submit(ctx, generateBody(fields), "queue", req);
        return imagesResponse(ctx, req, gens);
      });

      v1.get("/models", async () => ({
        object: "list",
        data: MODELS.map((m) => openAIModel(m.id, m.created, m.ownedBy)),
      }));
      v1.get<{ Params: { id: string } }>("/models/:id", async (req) => {
        const m = findModel(req.params.id);
        if (!m) throw new ApiError("model_not_found", { model: req.params.id });
        return openAIModel(m.id, m.created, m.ownedBy);
      });
    },
    { prefix: "/v1" },
  );
}
