// Validates request bodies against a model's JSON Schema (draft 2020-12) and turns every failure
// into a message that names the field, the rule and the value received.
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { ApiError } from "../errors.js";

const ajv = new Ajv2020({ allErrors: true, strict: true, coerceTypes: false, useDefaults: false });
const compiled = new WeakMap<object, ValidateFunction>();
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
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
}

/** The rule a field must follow, in words, derived from its schema (never written twice). */
export function describeRule(p: PropSchema): string {
  if (p.enum) return `must be one of ${p.enum.join(", ")}`;
  if (p.format === "uri") return "must be an absolute http(s) URL";
  switch (p.type) {
    case "array":
      return p.items?.enum
        ? `must be a non-empty list of distinct values from ${p.items.enum.join(", ")}`
        : "must be a list";
    case "integer":
    case "number": {
      const kind = p.type === "integer" ? "an integer" : "a number";
      if (p.minimum !== undefined && p.maximum !== undefined)
        return `must be ${kind} from ${p.minimum} to ${p.maximum}`;
      if (p.minimum !== undefined) return `must be ${kind} ≥ ${p.minimum}`;
      return `must be ${kind}`;
    }
    case "string": {
      const parts = ["must be a non-empty string"];
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

function showValue(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
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
}

/** Returns the body typed as T, or throws a 400 ApiError naming every bad field. */
export function validateBody<T>(schema: ObjectSchema, body: unknown): T {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError("invalid_request", {
      detail: `the request body must be a JSON object, got ${Array.isArray(body) ? "an array" : showValue(body)}`,
    });
  }
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  if (validate(body)) return body as T;
  const messages = new Map<string, string>();
  for (const err of validate.errors ?? []) {
    // an error inside a list (webhook_events_filter.1) is reported on the list itself
    const field = fieldOf(err).split(".")[0] ?? "";
    if (messages.has(field)) continue;
    const value = (body as Record<string, unknown>)[field];
    if (err.keyword === "additionalProperties") {
      messages.set(field, `${field}: unknown field (not a parameter of this model), got ${showValue(value)}`);
    } else if (err.keyword === "required") {
      messages.set(
        field,
        `${field}: required, ${describeRule((schema.properties as Record<string, PropSchema>)[field] ?? {})}`,
      );
    } else {
      const rule = describeRule((schema.properties as Record<string, PropSchema>)[field] ?? {});
      messages.set(field, `${field}: ${rule}, got ${showValue(value)}`);
    }
  }
  const fields = [...messages.keys()];
  throw new ApiError("invalid_request", { detail: [...messages.values()].join("; ") }, { fields });
}
