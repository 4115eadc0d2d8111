// The form checked in the browser against the model's own json_request_schema before anything is
// sent: the same rules the server applies (its schema), a message per field in the server's words.
import { type Schema, Validator } from "@cfworker/json-schema";
import type { JsonObjectSchema, JsonSchemaProp } from "./schemaForm.js";

/** The rule a field must follow, in words, from its schema (as the server words it). */
export function describeRule(p: JsonSchemaProp): string {
  if (p.enum) return `must be one of ${p.enum.join(", ")}`;
  if (p.format === "uri") return "must be an absolute http(s) URL";
  switch (p.type) {
    case "array": {
      if (p.items?.enum) return `must be a non-empty list of distinct values from ${p.items.enum.join(", ")}`;
      if (p.items?.properties) {
        const each = Object.entries(p.items.properties)
          .map(([k, sub]) => `${k} ${describeRule(sub).replace(/^must be /, "")}`)
          .join(", ");
        const most = p.maxItems === undefined ? "" : `at most ${p.maxItems} `;
        return `must be a list of ${most}objects {${each}}`;
      }
      return "must be a list";
    }
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

const show = (v: unknown) => {
  const s = typeof v === "number" && Number.isNaN(v) ? "not a number" : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
};

/** Field name → message, for every field of `body` the schema refuses (empty: valid). */
export function validateRequest(
  schema: JsonObjectSchema & Record<string, unknown>,
  body: Record<string, unknown>,
): Record<string, string> {
  const out: Record<string, string> = {};
  // JSON has no NaN; a number box that holds no number is caught here, not by the schema.
  for (const [name, v] of Object.entries(body))
    if (typeof v === "number" && !Number.isFinite(v))
      out[name] = `${describeRule(schema.properties[name] ?? {})}, got ${show(v)}`;
  const result = new Validator(schema as unknown as Schema, "2020-12", false).validate(body);
  for (const e of result.errors) {
    if (e.keyword === "required") {
      const name = /"([^"]+)"/.exec(e.error)?.[1];
      if (name && !out[name]) out[name] = "required";
      continue;
    }
    const name = /^#\/([^/]+)/.exec(e.instanceLocation)?.[1];
    if (!name || out[name] || e.keyword === "properties") continue;
    const prop = schema.properties[name];
    out[name] = prop ? `${describeRule(prop)}, got ${show(body[name])}` : "is not a field of this model";
  }
  return out;
}
