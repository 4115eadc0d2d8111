// Test fixture: the model's request schema with issue 15's and 16's fields (references and the
// mask among them), as
// packages/server/src/schema/flux-kontext-dev.ts words them (the committed openapi.json may not
// have them yet). Used by the unit tests only.
import { readFileSync } from "node:fs";
import path from "node:path";

/** The committed schema with the new fields as packages/server/src/schema/flux-kontext-dev.ts words them. */
export function newFieldsSchema(): Record<string, unknown> & { properties: Record<string, unknown> } {
  const openapi = JSON.parse(
    readFileSync(path.resolve(import.meta.dirname, "../../../../server/openapi.json"), "utf8"),
  );
  const s = structuredClone(openapi.components.schemas.FluxKontextDevRequest);
  const reference = (n: number) => ({
    type: "string",
    description: `Kontext addition (BFL's Kontext API name): reference image ${n}. Same forms as input_image.`,
    minLength: 1,
  });
  Object.assign(s.properties, {
    input_image_2: reference(2),
    input_image_3: reference(3),
    input_image_4: reference(4),
    mask_image: {
      type: "string",
      description: "Kontext addition: where input_image may change: white = change, black = keep.",
      minLength: 1,
    },
    negative_prompt: {
      type: "string",
      description: "What the image should not show. Used only with true_cfg_scale above 1.",
      maxLength: 10_000,
    },
    true_cfg_scale: {
      type: "number",
      description: "True classifier-free guidance with negative_prompt: 1 is off.",
      minimum: 1,
      maximum: 10,
      default: 1,
    },
    strength: {
      type: "number",
      description: "How much of the input image is redrawn, above 0 up to 1.",
      exclusiveMinimum: 0,
      maximum: 1,
      default: 1,
    },
    reference_method: {
      type: "string",
      enum: ["offset", "index"],
      description: "Where reference images sit.",
      default: "offset",
    },
    loras: {
      type: "array",
      description: "Kontext addition: LoRA adapters applied for this request only, each with its scale.",
      maxItems: 4,
      default: [],
      items: {
        type: "object",
        additionalProperties: false,
        required: ["name"],
        properties: {
          name: { type: "string", minLength: 1, maxLength: 512, description: "A LoRA file." },
          scale: {
            type: "number",
            minimum: -4,
            maximum: 4,
            default: 1,
            description: "The adapter's weight.",
          },
        },
      },
    },
    output_resolution: {
      type: "string",
      enum: ["bucket", "input"],
      description: "Kontext addition: bucket (about one megapixel) or input (the input's own size).",
      default: "bucket",
    },
    preserve_unedited: {
      type: "boolean",
      description:
        "Kontext addition, with output_resolution input only (default true there): pixels the edit did not change are the original's.",
    },
  });
  return s;
}

/**
 * The text-to-image schema (json_generate_request_schema) as the server derives it from the
 * edit's: no input image or the fields that need one, aspect_ratio without match_input_image.
 */
export function generateSchema(edit = newFieldsSchema()): Record<string, unknown> {
  const s = structuredClone(edit) as {
    properties: Record<string, Record<string, unknown>>;
    required?: string[];
  };
  for (const k of ["input_image", "strength", "reference_method", "output_resolution", "preserve_unedited"])
    delete s.properties[k];
  for (const k of Object.keys(s.properties))
    if (/^input_image_\d$|^mask_image$/.test(k)) delete s.properties[k];
  const aspect = s.properties.aspect_ratio as { enum: string[] };
  s.properties.aspect_ratio = {
    ...aspect,
    enum: aspect.enum.filter((r) => r !== "match_input_image"),
    default: "1:1",
  };
  s.required = ["prompt"];
  return s;
}
