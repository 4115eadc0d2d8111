// The engine protocol's one definition, docs/protocol/protocol.schema.json, compiled once. The
// gateway validates every message the engine sends against it, nested fields included; the
// tests check the types in protocol.ts and the engine's Python against the same file.
import { readFileSync } from "node:fs";
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";

/** src/engine/ and dist/engine/ are both four folders below the repository root. */
export const PROTOCOL_SCHEMA_URL = new URL("../../../../docs/protocol/protocol.schema.json", import.meta.url);

export type ProtocolSchema = { $id: string; $defs: Record<string, unknown> };

/** The schema's definition for each message `type`, per direction. */
export const MESSAGE_DEFS = {
  to_engine: { job: "job", cancel: "cancel", health: "health_request", shutdown: "shutdown" },
  from_engine: {
    ready: "ready",
    fatal: "fatal",
    started: "started",
    progress: "progress",
    result: "result",
    error: "error",
    health: "health",
  },
} as const;
export type Direction = keyof typeof MESSAGE_DEFS;

function describe(e: ErrorObject): string {
  const at = e.instancePath.slice(1).replaceAll("/", ".");
  if (e.keyword === "required") return `${at ? `${at}.` : ""}${e.params.missingProperty} is missing`;
  if (e.keyword === "additionalProperties")
    return `unknown field ${at ? `${at}.` : ""}${e.params.additionalProperty}`;
  return `${at || "message"} ${e.message}`;
}

/** Validators for one schema document: a problem in words, or null. */
export function protocolValidator(
  schema: ProtocolSchema,
): (dir: Direction, m: Record<string, unknown>) => string | null {
  const ajv = new Ajv2020({ strict: true, allErrors: false });
  ajv.addSchema(schema);
  const compiled = new Map<string, ValidateFunction>();
  return (dir, m) => {
    const defs: Record<string, string> = MESSAGE_DEFS[dir];
    const type = String(m.type);
    const def = Object.hasOwn(defs, type) ? defs[type] : undefined;
    if (!def) return `unknown message type ${JSON.stringify(m.type)}`;
    let validate = compiled.get(def);
    if (!validate) {
      validate = ajv.getSchema(`${schema.$id}#/$defs/${def}`);
      if (!validate) throw new Error(`the protocol schema has no $defs/${def}`);
      compiled.set(def, validate);
    }
    return validate(m) ? null : `${type}: ${describe(validate.errors?.[0] as ErrorObject)}`;
  };
}

export const protocolSchema = JSON.parse(readFileSync(PROTOCOL_SCHEMA_URL, "utf8")) as ProtocolSchema;
/** A message's problem against docs/protocol/protocol.schema.json, or null when it is valid. */
export const messageProblem = protocolValidator(protocolSchema);

/** The job message's fields that are not request parameters: what the gateway adds around them. */
const JOB_ENVELOPE = new Set([
  "v",
  "type",
  "job_id",
  "input",
  "references",
  "mask",
  "seeds",
  "output_dir",
  "preview",
]);

/**
 * The request parameters the engine takes, as the protocol schema lists them: the job message's
 * other fields. The gateway copies exactly these from a generation's stored parameters, so a
 * field added to the request schema and to the protocol schema reaches the engine with no list
 * of fields to edit in between.
 */
export const ENGINE_PARAMS: readonly string[] = Object.keys(
  (protocolSchema.$defs.job as { properties: Record<string, unknown> }).properties,
).filter((k) => !JOB_ENVELOPE.has(k));
