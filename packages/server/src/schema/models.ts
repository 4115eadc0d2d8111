// The served models and how the models endpoint describes them. Each model points at its edit
// request schema (json_request_schema and request_schema both serve it as draft 2020-12) and its
// text-to-image schema (json_generate_request_schema).
import { EditRequest, GenerateRequest, MODEL_ID } from "./flux-kontext-dev.js";

export const JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema";

export interface ModelSpec {
  id: string;
  displayName: string;
  description: string;
  created: number;
  ownedBy: string;
  schema: typeof EditRequest;
  /** POST /api/ai/images/generate's body (text-to-image), derived from `schema`. */
  generateSchema: typeof GenerateRequest;
}

export const MODELS: readonly ModelSpec[] = [
  {
    id: MODEL_ID,
    displayName: "FLUX.1 Kontext [dev]",
    description:
      "Black Forest Labs' 12B rectified-flow transformer for instruction-based image editing: give it an image and say what to change.",
    created: 1748563200, // 2025-05-30, the model's public release
    ownedBy: "black-forest-labs",
    schema: EditRequest,
    generateSchema: GenerateRequest,
  },
];

export function findModel(id: string): ModelSpec | undefined {
  return MODELS.find((m) => m.id === id);
}

/** A schema as served: plain JSON (TypeBox's symbol keys dropped) with its dialect. */
export function jsonSchemaOf(schema: object): Record<string, unknown> {
  return { $schema: JSON_SCHEMA_DIALECT, ...JSON.parse(JSON.stringify(schema)) };
}
