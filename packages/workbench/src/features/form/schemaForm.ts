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
  exclusiveMinimum?: number;
  maximum?: number;
  minLength?: number;
  maxItems?: number;
  maxLength?: number;
  format?: string;
  pattern?: string;
  items?: JsonSchemaProp;
  properties?: Record<string, JsonSchemaProp>;
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
  | "reference" // input_image_2…4: more reference images, each as input_image
  | "mask" // mask_image: painted with a brush over the input image
  | "textarea"
  | "text"
  | "select"
  | "range" // a number with both bounds: slider and number box
  | "number" // a number with an open end (e.g. seed): empty means "left out"
  | "boolean"
  | "choices" // a list of enum values: one checkbox each
  | "adapters"; // a list of {name, scale} objects (loras): the LoRA picker

export interface Field {
  name: string;
  label: string;
  description: string;
  kind: FieldKind;
  required: boolean;
  integer: boolean;
  default?: unknown;
  min?: number;
  /** min is an exclusive bound (strength: above 0) */
  exclusiveMin?: boolean;
  max?: number;
  step?: number;
  options?: string[];
  /** a list's most items (loras: 4) */
  maxItems?: number;
  /** the schema of one item of a list of objects (loras: name, scale) */
  itemProps?: Record<string, JsonSchemaProp>;
  /** a one-line explanation shown instead of the schema's (longer) description, which stays as a tooltip */
  note?: string;
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

/** Labels where the parameter's name reads badly (the schema's title, when it has one, wins). */
export const FIELD_LABELS: Record<string, string> = { true_cfg_scale: "True guidance" };

/** "num_inference_steps" → "Inference steps"; "disable_safety_checker" → "Disable safety checker". */
export function labelOf(name: string, prop: JsonSchemaProp): string {
  if (prop.title) return prop.title;
  const label = FIELD_LABELS[name];
  if (label) return label;
  const words = name.replace(/^num_/, "").split("_");
  const text = words.join(" ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** input_image_2, input_image_3, …: reference images beside the input (BFL's names). */
export const REFERENCE_FIELD = /^input_image_\d+$/;

/** Fields the form holds as images, not values (never in `values`, never in requestBody). */
export const IMAGE_KINDS: readonly FieldKind[] = ["image", "reference", "mask"];

function kindOf(name: string, prop: JsonSchemaProp): FieldKind {
  if (name === "input_image") return "image";
  if (REFERENCE_FIELD.test(name)) return "reference";
  if (name === "mask_image") return "mask";
  if (prop.type === "array" && prop.items?.enum) return "choices";
  if (prop.type === "array" && prop.items?.properties?.name && prop.items.properties.scale) return "adapters";
  if (prop.enum) return "select";
  if (prop.type === "boolean") return "boolean";
  if (prop.type === "integer" || prop.type === "number") {
    const min = prop.minimum ?? prop.exclusiveMinimum;
    return min !== undefined && prop.maximum !== undefined && prop.maximum - min <= 1000 ? "range" : "number";
  }
  return (prop.maxLength ?? 0) > 200 ? "textarea" : "text";
}

const NICE_STEPS = [0.1, 0.05, 0.02, 0.01, 0.005, 0.001];

/**
 * A slider's step: 1 for integers, else the largest round step of at most a hundredth of the
 * range and 0.1 (guidance 0–10: 0.1; true_cfg_scale 1–10: 0.05; a LoRA's scale −4…4: 0.05;
 * strength 0–1: 0.01).
 */
export function stepOf(prop: JsonSchemaProp): number {
  if (prop.type === "integer") return 1;
  const span = (prop.maximum ?? 10) - (prop.minimum ?? prop.exclusiveMinimum ?? 0);
  return NICE_STEPS.find((s) => s <= span / 100 + 1e-9) ?? 0.001;
}

/**
 * One-line explanations for fields whose schema description is written for API readers (long,
 * with the edge cases); the form shows the line, the description stays as the field's tooltip.
 */
export const FIELD_NOTES: Record<string, string> = {
  input_image_2:
    "Further images the edit may draw on (a person, an object, a style). Their order matters; each costs about as much as the input.",
  output_resolution:
    "bucket: about one megapixel, as the model works; input: the result at your image's own size.",
  preserve_unedited:
    "What the edit did not change keeps the original's pixels, bit for bit; only the changed part is upscaled.",
};

/**
 * Fields shown only when another field makes them matter (a rule applies only when the form has
 * the field it depends on). A hidden field is left out of the request.
 */
export const SHOWN_WHEN: Record<
  string,
  {
    after: string;
    when: (values: FormValues) => boolean;
    /** sent even empty while shown */
    empty?: true;
    /** what the field stands for while shown without a value (the server's default there) */
    unset?: unknown;
  }
> = {
  // used only with true guidance, which is off at 1; shown, even an empty one counts (as diffusers:
  // without any negative prompt there is no true guidance at all)
  negative_prompt: {
    after: "true_cfg_scale",
    when: (v) => typeof v.true_cfg_scale === "number" && v.true_cfg_scale > 1,
    empty: true,
  },
  // refused by the server with output_resolution bucket (it has no meaning there)
  // (the schema gives no default: the server's is true with output_resolution input)
  preserve_unedited: {
    after: "output_resolution",
    when: (v) => v.output_resolution === "input",
    unset: true,
  },
};

/** Whether a field is shown (and sent) with these values. */
export function isShown(field: Field, fields: readonly Field[], values: FormValues): boolean {
  const rule = SHOWN_WHEN[field.name];
  if (!rule || !fields.some((f) => f.name === rule.after)) return true;
  return rule.when(values);
}

/** The value a control shows: the form's, or what an unset shown field stands for. */
export function shownValue(field: Field, values: FormValues): unknown {
  return values[field.name] ?? SHOWN_WHEN[field.name]?.unset;
}

/**
 * What the server checks across fields, checked here first in its words (field → message):
 * output_resolution input keeps the input's shape, so aspect_ratio must be match_input_image.
 */
export function crossFieldErrors(body: FormValues): Record<string, string> {
  const out: Record<string, string> = {};
  if (
    body.output_resolution === "input" &&
    body.aspect_ratio !== undefined &&
    body.aspect_ratio !== "match_input_image"
  )
    out.aspect_ratio = `must be match_input_image with output_resolution input (the result has the input's own shape), got ${JSON.stringify(body.aspect_ratio)}`;
  else if (
    body.mask_image !== undefined &&
    body.aspect_ratio !== undefined &&
    body.aspect_ratio !== "match_input_image"
  )
    out.aspect_ratio = `must be match_input_image with a mask (it is painted over the input's own shape), got ${JSON.stringify(body.aspect_ratio)}`;
  return out;
}

/** Fields in display order: a dependent field right after the field it depends on. */
export function displayOrder(fields: readonly Field[]): Field[] {
  const names = new Set(fields.map((f) => f.name));
  const dependents = fields.filter((f) => {
    const rule = SHOWN_WHEN[f.name];
    return rule !== undefined && names.has(rule.after);
  });
  const out: Field[] = [];
  for (const f of fields) {
    if (dependents.includes(f)) continue;
    out.push(f);
    for (const d of dependents) if (SHOWN_WHEN[d.name]?.after === f.name) out.push(d);
  }
  return out;
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
      else if (prop.exclusiveMinimum !== undefined) {
        field.min = prop.exclusiveMinimum;
        field.exclusiveMin = true;
      }
      if (prop.maximum !== undefined) field.max = prop.maximum;
      if (prop.type === "integer" || prop.type === "number") field.step = stepOf(prop);
      const options = prop.enum ?? prop.items?.enum;
      if (options) field.options = options.map(String);
      if (prop.maxItems !== undefined) field.maxItems = prop.maxItems;
      if (prop.items?.properties) field.itemProps = prop.items.properties;
      const note = FIELD_NOTES[name];
      if (note) field.note = note;
      return field;
    });
}

/** What the form holds: a field's value, or undefined when it is empty. */
export type FormValues = Record<string, unknown>;

export function defaultValues(fields: readonly Field[]): FormValues {
  const out: FormValues = {};
  for (const f of fields)
    if (f.default !== undefined && !IMAGE_KINDS.includes(f.kind)) out[f.name] = structuredClone(f.default);
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
    if (IMAGE_KINDS.includes(f.kind) || !isShown(f, fields, values)) continue;
    const rule = SHOWN_WHEN[f.name];
    const v = rule?.empty && rule.when(values) ? (values[f.name] ?? "") : values[f.name];
    if (v === undefined || v === null || (v === "" && !rule?.empty)) continue;
    if (f.addition && same(v, f.default)) continue;
    body[f.name] = v;
  }
  return body;
}

/** Form values from a stored request (a history item), falling back to the defaults. */
export function valuesFrom(fields: readonly Field[], params: Record<string, unknown>): FormValues {
  const out = defaultValues(fields);
  for (const f of fields) {
    const v = params[f.name];
    if (v === undefined || IMAGE_KINDS.includes(f.kind)) continue;
    // a choice this schema does not offer (match_input_image in text-to-image) falls back to the default
    if (f.kind === "select" && !f.options?.includes(String(v))) continue;
    out[f.name] = v;
  }
  return out;
}

/** A number box's text as a value: undefined when empty, NaN kept so the server names the field. */
export function parseNumber(text: string): number | undefined {
  if (text.trim() === "") return undefined;
  return Number(text);
}
