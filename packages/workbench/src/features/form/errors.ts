// Errors in words beside the fields that caused them: the browser's own check against the schema
// and, for what only the server knows, its refusal (KontextError: status, code, fields, detail).
import { KontextError } from "@kontext/client";

export interface FormErrors {
  /** field name → message, for errors that name a field of the form */
  fields: Record<string, string>;
  /** what no field explains (queue full, engine not ready, ...) */
  general: string | null;
}

export const NO_ERRORS: FormErrors = { fields: {}, general: null };

export const hasErrors = (e: FormErrors) => e.general !== null || Object.keys(e.fields).length > 0;

/**
 * Splits a refusal's detail ("guidance: must be ...; prompt: required, ...") over the form's
 * fields; a message that names no known field stays general.
 */
export function formErrors(err: unknown, fieldNames: readonly string[]): FormErrors {
  if (!(err instanceof KontextError)) {
    return { fields: {}, general: err instanceof Error ? err.message : String(err) };
  }
  const out: FormErrors = { fields: {}, general: null };
  const rest: string[] = [];
  // field names have digits too (input_image_2)
  for (const part of err.message.split(/;\s+(?=[a-z_][a-z0-9_]*:)/)) {
    const name = /^([a-z_][a-z0-9_]*):/.exec(part)?.[1];
    if (name && fieldNames.includes(name)) out.fields[name] = part.slice(name.length + 1).trim();
    else rest.push(part);
  }
  for (const name of err.fields)
    if (!(name in out.fields) && fieldNames.includes(name)) out.fields[name] = err.message;
  if (rest.length > 0) out.general = `The server refused the run (HTTP ${err.status}): ${rest.join("; ")}`;
  return out;
}
