// Turns the CLI's options into a request body: option values become numbers or booleans where
// they look like one, and anything else goes to the server as typed, so that the server (whose
// schema is the one source of the rules) answers a bad value with its own message.

/** "28" → 28, "true" → true, anything else as it was typed. */
export function typedValue(raw: string): unknown {
  const v = raw.trim();
  if (/^-?\d+(\.\d+)?(e-?\d+)?$/i.test(v)) return Number(v);
  if (v === "true" || v === "false") return v === "true";
  if (v.startsWith("[") || v.startsWith("{")) {
    try {
      return JSON.parse(v);
    } catch {
      return raw;
    }
  }
  return raw;
}

/** `--set key=value` pairs as body fields. */
export function parseSets(sets: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of sets) {
    const eq = s.indexOf("=");
    if (eq <= 0) throw new UsageError(`--set takes key=value, got ${JSON.stringify(s)}`);
    out[s.slice(0, eq)] = typedValue(s.slice(eq + 1));
  }
  return out;
}

/** The output format an output file name asks for (by its extension). */
export function formatOfPath(file: string): "webp" | "png" | "jpg" | null {
  const ext = file.toLowerCase().split(".").pop();
  if (ext === "webp" || ext === "png") return ext;
  if (ext === "jpg" || ext === "jpeg") return "jpg";
  return null;
}

/** A mistake in how the CLI was called (exit status 2), as opposed to a server error (1). */
export class UsageError extends Error {}
