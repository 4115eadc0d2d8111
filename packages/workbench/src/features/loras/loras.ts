// LoRA adapters for a request: the server's listing (GET /api/ai/models/:id/loras, { object:
// "list", data: [...] }: each file in KONTEXT_LORA_DIR with its size, detected format and how
// many of its modules match a layer of the model, the engine's doctor report),
// and the form's `loras` value (up to the schema's maxItems of { name, scale }) changed by pure
// functions. No React here.
import { Store } from "../../app/store.js";
import type { Api } from "../session/api.js";

export interface LoraFile {
  name: string;
  sizeBytes: number | null;
  /** detected format: diffusers, kohya, bfl, fal, ... */
  format: string | null;
  matched: number | null;
  total: number | null;
  unmatchedPrefixes: string[];
  /** false: the server refuses the file (its reason in `error`) */
  ok: boolean;
  error: string | null;
}

export interface ChosenLora {
  name: string;
  scale: number;
}

/** The settings the schema gives a LoRA's scale (loras.items.scale), with the as fallback. */
export interface ScaleRule {
  min: number;
  max: number;
  step: number;
  default: number;
  maxItems: number;
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);

/** The listing's body, read defensively ({ object: "list", data: [...] }; { loras: [...] } or a bare list too). */
export function parseListing(raw: unknown): LoraFile[] {
  const body = raw as { data?: unknown; loras?: unknown } | null;
  const list = Array.isArray(raw) ? raw : (body?.data ?? body?.loras ?? []);
  if (!Array.isArray(list)) return [];
  return list
    .filter((x): x is Record<string, unknown> => typeof x === "object" && x !== null && str(x.name) !== null)
    .map((x) => ({
      name: String(x.name),
      sizeBytes: num(x.size_bytes),
      format: str(x.format),
      matched: num(x.matched),
      total: num(x.total),
      unmatchedPrefixes: Array.isArray(x.unmatched_prefixes) ? x.unmatched_prefixes.map(String) : [],
      ok: x.ok !== false,
      error: str(x.error),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** "kohya · 342/342 layers" (what was detected and how much of it matched the model). */
export function matchLabel(f: LoraFile): string {
  const parts = [f.format ?? "unknown format"];
  if (f.matched !== null && f.total !== null) parts.push(`${f.matched}/${f.total} layers`);
  return parts.join(" · ");
}

/** Why a file cannot be used, in words. */
export function refusalOf(f: LoraFile): string | null {
  if (f.ok) return null;
  if (f.error) return f.error;
  if (f.unmatchedPrefixes.length > 0)
    return `unmatched layers: ${f.unmatchedPrefixes.slice(0, 3).join(", ")}`;
  return "the server cannot use this file";
}

export function sizeLabel(bytes: number | null): string {
  if (bytes === null) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(0)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}

/** The form's value as a list of adapters (anything else: none). */
export function chosenOf(value: unknown): ChosenLora[] {
  if (!Array.isArray(value)) return [];
  return value
    .filter((x): x is Record<string, unknown> => typeof x === "object" && x !== null && str(x.name) !== null)
    .map((x) => ({ name: String(x.name), scale: num(x.scale) ?? 1 }));
}

export function scaleRule(
  itemProps: Record<string, { minimum?: number; maximum?: number; default?: unknown }> | undefined,
  maxItems: number | undefined,
): ScaleRule {
  const p = itemProps?.scale;
  return {
    min: p?.minimum ?? -4,
    max: p?.maximum ?? 4,
    step: 0.05,
    default: typeof p?.default === "number" ? p.default : 1,
    maxItems: maxItems ?? 4,
  };
}

/** Adds an adapter at the default scale; unchanged when it is already there or the list is full. */
export function addLora(list: readonly ChosenLora[], name: string, rule: ScaleRule): ChosenLora[] {
  if (list.length >= rule.maxItems || list.some((l) => l.name === name)) return [...list];
  return [...list, { name, scale: rule.default }];
}

/** A scale clamped to the rule and rounded to its step (a slider's float noise gone). */
export function clampScale(scale: number, rule: ScaleRule): number {
  if (!Number.isFinite(scale)) return scale; // NaN stays: the form's check names the field
  const clamped = Math.min(rule.max, Math.max(rule.min, scale));
  return Number((Math.round(clamped / rule.step) * rule.step).toFixed(4));
}

export function setScale(list: readonly ChosenLora[], index: number, scale: number): ChosenLora[] {
  return list.map((l, i) => (i === index ? { ...l, scale } : l));
}

export function removeLora(list: readonly ChosenLora[], index: number): ChosenLora[] {
  return list.filter((_, i) => i !== index);
}

export interface LorasState {
  /** null until listed */
  files: LoraFile[] | null;
  loading: boolean;
  /** the listing failed (HTTP 404: this server has no LoRA listing) */
  error: string | null;
}

export class Loras extends Store<LorasState> {
  constructor(private readonly api: Pick<Api, "loras">) {
    super({ files: null, loading: false, error: null });
  }

  async load(): Promise<void> {
    this.update({ loading: true });
    try {
      this.update({ files: parseListing(await this.api.loras()), loading: false, error: null });
    } catch (err) {
      this.update({ loading: false, error: (err as Error).message || String(err) });
    }
  }

  file(name: string): LoraFile | undefined {
    return this.state.files?.find((f) => f.name === name);
  }
}
