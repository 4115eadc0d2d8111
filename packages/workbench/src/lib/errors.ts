// Server errors (the hosted envelope) turned into words beside the fields that caused them.

export interface ErrorEnvelope {
  error?: { type?: string; title?: string; detail?: string; fields?: string[] };
  status_message?: string;
}

export interface FormErrors {
  /** field name → message, for errors that name a field of the form */
  fields: Record<string, string>;
  /** what no field explains (queue full, engine not ready, ...) */
  general: string | null;
}

export const NO_ERRORS: FormErrors = { fields: {}, general: null };

/**
 * Splits an error's detail ("guidance: must be ...; prompt: required, ...") over the form's
 * fields; a message that names no known field stays general.
 */
export function formErrors(
  envelope: ErrorEnvelope,
  status: number,
  fieldNames: readonly string[],
): FormErrors {
  const detail = envelope.error?.detail ?? envelope.status_message ?? `the server answered ${status}`;
  const out: FormErrors = { fields: {}, general: null };
  const rest: string[] = [];
  for (const part of detail.split(/;\s+(?=[a-z_]+:)/)) {
    const name = /^([a-z_]+):/.exec(part)?.[1];
    if (name && fieldNames.includes(name)) {
      out.fields[name] = part.slice(name.length + 1).trim();
    } else rest.push(part);
  }
  for (const name of envelope.error?.fields ?? []) {
    if (!(name in out.fields) && fieldNames.includes(name)) out.fields[name] = detail;
  }
  if (rest.length > 0) {
    const title = envelope.error?.title;
    out.general = title ? `${title}: ${rest.join("; ")}` : rest.join("; ");
  }
  return out;
}
