// The request form, derived from the model's json_request_schema (GET /api/ai/models/:id): one
// field per property, with its label, description, range, choices and default. Nothing about a
// parameter is written here; a new schema property appears in the form by itself.

export interface JsonSchemaProp {
  type?: string;
  title?: string;
  description?: string;
  enum?: readonly unknown[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  format?: string;
  pattern?: string;
  items?: JsonSchemaProp;
  /** false: a field only API clients need (response_format, stream, webhook, ...): not in the form */
  "x-kontext-form"?: boolean;
}

export interface JsonObjectSchema {
  properties: Record<string, JsonSchemaProp>;
  required?: readonly string[];
}

/** A model's json_request_schema, as the client types it (an open object), read as a form schema. */
export function asFormSchema(schema: Record<string, unknown>): JsonObjectSchema {
  const properties = (schema.properties ?? {}) as Record<string, JsonSchemaProp>;
  const required = Array.isArray(schema.required) ? (schema.required as string[]) : [];
  return { properties, required };
}

export type FieldKind =
  | "image" // input_image: upload, drop, paste or URL
  | "textarea"
  | "text"
  | "select"
  | "range" // a number with both bounds: slider and number box
  | "number" // a number with an open end (e.g. seed): empty means "left out"
  | "boolean"
  | "choices"; // a list of enum values: one checkbox each

export interface Field {
  name: string;
  label: string;
  description: string;
  kind: FieldKind;
  required: boolean;
  integer: boolean;
  default?: unknown;
  min?: number;
  max?: number;
  step?: number;
  options?: string[];
  /** A Kontext addition to the hosted API (left out of requests while at its default). */
  addition: boolean;
}

/** The property the workbench sets itself (the model it loaded). */
export const NOT_IN_FORM = ["model"];

/** In the form: the schema marks API-only fields with "x-kontext-form": false. */
export const inForm = (name: string, prop: JsonSchemaProp) =>
  !NOT_IN_FORM.includes(name) && prop["x-kontext-form"] !== false;

/** Shown first; every other field of the schema goes under "More options". */
export const PRIMARY_FIELDS = [
  "input_image",
  "prompt",
  "aspect_ratio",
  "num_inference_steps",
  "guidance",
  "seed",
];

/** "num_inference_steps" → "Inference steps"; "disable_safety_checker" → "Disable safety checker". */
export function labelOf(name: string, prop: JsonSchemaProp): string {
  if (prop.title) return prop.title;
  const words = name.replace(/^num_/, "").split("_");
  const text = words.join(" ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function kindOf(name: string, prop: JsonSchemaProp): FieldKind {
  if (name === "input_image") return "image";
  if (prop.type === "array" && prop.items?.enum) return "choices";
  if (prop.enum) return "select";
  if (prop.type === "boolean") return "boolean";
  if (prop.type === "integer" || prop.type === "number") {
    return prop.minimum !== undefined && prop.maximum !== undefined && prop.maximum - prop.minimum <= 1000
      ? "range"
      : "number";
  }
  return (prop.maxLength ?? 0) > 200 ? "textarea" : "text";
}

export function fieldsOf(schema: JsonObjectSchema): Field[] {
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties)
    .filter(([name, prop]) => inForm(name, prop))
    .map(([name, prop]) => {
      const integer = prop.type === "integer";
      const field: Field = {
        name,
        label: labelOf(name, prop),
        description: prop.description ?? "",
        kind: kindOf(name, prop),
        required: required.has(name),
        integer,
        addition: /^Kontext addition/i.test(prop.description ?? ""),
      };
      if ("default" in prop) field.default = prop.default;
      if (prop.minimum !== undefined) field.min = prop.minimum;
      if (prop.maximum !== undefined) field.max = prop.maximum;
      if (prop.type === "integer" || prop.type === "number") {
        field.step = integer ? 1 : Math.min(0.1, ((prop.maximum ?? 10) - (prop.minimum ?? 0)) / 100);
      }
      const options = prop.enum ?? prop.items?.enum;
      if (options) field.options = options.map(String);
      return field;
    });
}

/** What the form holds: a field's value, or undefined when it is empty. */
export type FormValues = Record<string, unknown>;

export function defaultValues(fields: readonly Field[]): FormValues {
  const out: FormValues = {};
  for (const f of fields) if (f.default !== undefined) out[f.name] = structuredClone(f.default);
  return out;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The JSON body the form stands for, in schema order. Every hosted parameter with a value is
 * sent explicitly (so copied code says exactly what ran); Kontext additions only when changed
 * from their default, so code that uses none of them also runs against the hosted API.
 */
export function requestBody(modelId: string, fields: readonly Field[], values: FormValues): FormValues {
  const body: FormValues = { model: modelId };
  for (const f of fields) {
    const v = values[f.name];
    if (v === undefined || v === null || v === "") continue;
    if (f.addition && same(v, f.default)) continue;
    body[f.name] = v;
  }
  return body;
}

/** Form values from a stored request (a history item), falling back to the defaults. */
export function valuesFrom(fields: readonly Field[], params: Record<string, unknown>): FormValues {
  const out = defaultValues(fields);
  for (const f of fields) if (params[f.name] !== undefined) out[f.name] = params[f.name];
  return out;
}

/** A number box's text as a value: undefined when empty, NaN kept so the server names the field. */
export function parseNumber(text: string): number | undefined {
  if (text.trim() === "") return undefined;
  return Number(text);
}
