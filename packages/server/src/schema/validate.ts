// Validates request bodies against a model's JSON Schema (draft 2020-12) and turns every failure
// into a message that names the field, the rule and the value received.
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { ApiError } from "../errors.js";
import { FORM_ANNOTATION } from "./flux-kontext-dev.js";

// Ajv stops at the first error: with allErrors, a body of a million unknown fields made a million
// error objects (seconds of blocked event loop and a message of 145 MB). Validity is Ajv's; the
// message is then built field by field, at most MAX_REPORTED of them (reportErrors).
const ajv = new Ajv2020({ allErrors: false, strict: true, coerceTypes: false, useDefaults: false });
/** Annotations the schemas carry for their readers (the workbench's form), not rules: Ajv's strict mode is told of them. */
export const ANNOTATION_KEYWORDS = [FORM_ANNOTATION] as const;
for (const keyword of ANNOTATION_KEYWORDS) ajv.addKeyword({ keyword, schemaType: "boolean" });
const compiled = new WeakMap<object, ValidateFunction>();
/** Fields one error message names at most; the rest are counted. */
export const MAX_REPORTED = 5;
/** Longest error message built here (characters). */
export const MAX_DETAIL = 2000;
/** A lone UTF-16 surrogate: text the engine cannot encode (with the u flag, pairs do not match). */
const LONE_SURROGATE = /\p{Cs}/u;
// `uri` here means what the server can call: an absolute http(s) URL.
ajv.addFormat("uri", (v: string) => {
  try {
    const u = new URL(v);
    return (u.protocol === "http:" || u.protocol === "https:") && u.hostname.length > 0;
  } catch {
    return false;
  }
});

interface PropSchema {
  type?: string;
  format?: string;
  items?: PropSchema;
  enum?: readonly string[];
  minimum?: number;
  exclusiveMinimum?: number;
  maximum?: number;
  minLength?: number;
  maxItems?: number;
  properties?: Record<string, PropSchema>;
  maxLength?: number;
  pattern?: string;
}

/** The rule a field must follow, in words, derived from its schema (never written twice). */
export function describeRule(p: PropSchema): string {
  if (p.enum) return `must be one of ${p.enum.join(", ")}`;
  if (p.format === "uri") return "must be an absolute http(s) URL";
  switch (p.type) {
    case "array":
      if (p.items?.enum) return `must be a non-empty list of distinct values from ${p.items.enum.join(", ")}`;
      if (p.items?.properties) {
        const each = Object.entries(p.items.properties)
          .map(([k, sub]) => `${k} ${describeRule(sub).replace(/^must be /, "")}`)
          .join(", ");
        const most = p.maxItems === undefined ? "" : `at most ${p.maxItems} `;
        return `must be a list of ${most}objects {${each}}`;
      }
      return "must be a list";
    case "integer":
    case "number": {
      const kind = p.type === "integer" ? "an integer" : "a number";
      if (p.exclusiveMinimum !== undefined && p.maximum !== undefined)
        return `must be ${kind} above ${p.exclusiveMinimum} and at most ${p.maximum}`;
      if (p.minimum !== undefined && p.maximum !== undefined)
        return `must be ${kind} from ${p.minimum} to ${p.maximum}`;
      if (p.minimum !== undefined) return `must be ${kind} ≥ ${p.minimum}`;
      return `must be ${kind}`;
    }
    case "string": {
      const parts = [p.minLength ? "must be a non-empty string" : "must be a string"];
      if (p.pattern === "\\S") parts[0] = "must be a string with at least one non-space character";
      if (p.maxLength !== undefined) parts.push(`of at most ${p.maxLength} characters`);
      return parts.join(" ");
    }
    case "boolean":
      return "must be true or false";
    default:
      return "is invalid";
  }
}

/**
 * The value as JSON, cut at 80 characters. Bounded whatever the value: strings are cut before
 * quoting, lists and objects are walked only until 80 characters are written, and no deeper than
 * 4 levels (a value nested 100,000 deep must not overflow the stack here).
 */
export function showValue(v: unknown, max = 80): string {
  let out = "";
  const write = (s: string) => {
    out += s;
    return out.length <= max;
  };
  const walk = (x: unknown, depth: number): boolean => {
    if (typeof x === "string") return write(JSON.stringify(x.length > max ? x.slice(0, max) : x));
    if (x === null || typeof x !== "object") return write(JSON.stringify(x) ?? String(x));
    if (depth >= 4) return write(Array.isArray(x) ? "[...]" : "{...}");
    if (Array.isArray(x)) {
      if (!write("[")) return false;
      for (let i = 0; i < x.length; i++) {
        if ((i > 0 && !write(",")) || !walk(x[i], depth + 1)) return false;
      }
      return write("]");
    }
    if (!write("{")) return false;
    let first = true;
    for (const k in x) {
      if (!Object.hasOwn(x, k)) continue;
      if (!first && !write(",")) return false;
      first = false;
      if (!write(`${JSON.stringify(k.length > max ? k.slice(0, max) : k)}:`)) return false;
      if (!walk((x as Record<string, unknown>)[k], depth + 1)) return false;
    }
    return write("}");
  };
  walk(v, 0);
  return out.length > max ? `${out.slice(0, max - 3)}...` : out;
}

function fieldOf(err: ErrorObject): string {
  const base = err.instancePath.replace(/^\//, "").replace(/\//g, ".");
  if (err.keyword === "additionalProperties") {
    const extra = (err.params as { additionalProperty: string }).additionalProperty;
    return base ? `${base}.${extra}` : extra;
  }
  if (err.keyword === "required") {
    const missing = (err.params as { missingProperty: string }).missingProperty;
    return base ? `${base}.${missing}` : missing;
  }
  return base;
}

interface ObjectSchema {
  properties: object;
  required?: readonly string[];
  additionalProperties?: unknown;
}

const propertyValidators = new WeakMap<object, ValidateFunction>();
function propertyValidator(p: object): ValidateFunction {
  let v = propertyValidators.get(p);
  if (!v) {
    v = ajv.compile(p);
    propertyValidators.set(p, v);
  }
  return v;
}

/** The first top-level string field holding a lone surrogate, if any. */
function illFormedField(body: Record<string, unknown>, props: Record<string, PropSchema>): string | null {
  for (const k of Object.keys(props)) {
    const v = body[k];
    if (typeof v === "string" && LONE_SURROGATE.test(v)) return k;
  }
  return null;
}

const wellFormedMessage = (field: string, v: string) => {
  const at = v.search(LONE_SURROGATE);
  const unit = v.charCodeAt(at).toString(16);
  return `${field}: must be well-formed text, got a lone UTF-16 surrogate (\\u${unit}) at character ${at}`;
};

/**
 * The message for a body Ajv refused, in Ajv's order (missing fields, unknown fields in the body's
 * order, then each property's first error in the schema's order), naming at most MAX_REPORTED
 * fields and counting the rest; the work is bounded by the number of top-level keys.
 */
function reportErrors(
  schema: ObjectSchema,
  body: Record<string, unknown>,
  firstError: ErrorObject | undefined,
): ApiError {
  const props = schema.properties as Record<string, PropSchema>;
  const fields: string[] = [];
  const messages: string[] = [];
  let more = 0;
  const add = (field: string, message: string) => {
    if (fields.includes(field)) return;
    if (fields.length < MAX_REPORTED) {
      fields.push(field);
      messages.push(message);
    } else more++;
  };
  for (const r of schema.required ?? []) {
    if (body[r] === undefined) add(r, `${r}: required, ${describeRule(props[r] ?? {})}`);
  }
  if (schema.additionalProperties === false) {
    for (const k of Object.keys(body)) {
      if (Object.hasOwn(props, k)) continue;
      if (fields.length >= MAX_REPORTED) more++;
      else add(k, `${k}: unknown field (not a parameter of this model), got ${showValue(body[k])}`);
    }
  }
  for (const [k, p] of Object.entries(props)) {
    const v = body[k];
    if (v === undefined) continue;
    if (!propertyValidator(p)(v)) add(k, `${k}: ${describeRule(p)}, got ${showValue(v)}`);
    else if (typeof v === "string" && LONE_SURROGATE.test(v)) add(k, wellFormedMessage(k, v));
  }
  if (fields.length === 0 && firstError) {
    // a rule over the whole object (none of the model schemas has one): Ajv's own error
    const field = fieldOf(firstError).split(".")[0] ?? "";
    fields.push(field);
    messages.push(`${field || "the request body"}: ${firstError.message ?? "is invalid"}`);
  }
  let detail = messages.join("; ");
  if (more > 0) detail += `; and ${more} more`;
  if (detail.length > MAX_DETAIL) detail = `${detail.slice(0, MAX_DETAIL - 3)}...`;
  return new ApiError("invalid_request", { detail }, { fields });
}

/**
 * Returns the body typed as T, or throws a 400 ApiError naming the bad fields (a few; the rest
 * counted). Strings must be well-formed text: a lone surrogate is refused here, not in the engine.
 */
export function validateBody<T>(schema: ObjectSchema, body: unknown): T {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError("body_not_object", { got: Array.isArray(body) ? "an array" : showValue(body) });
  }
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  const obj = body as Record<string, unknown>;
  if (validate(obj) && illFormedField(obj, schema.properties as Record<string, PropSchema>) === null) {
    return body as T;
  }
  throw reportErrors(schema, obj, validate.errors?.[0] ?? undefined);
}
