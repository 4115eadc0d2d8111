// What the viewer shows and how its captions name what differs between the images compared.
import type { HistoryItem } from "@kontext/client";

export interface ViewItem {
  /** unique in the viewer: "result:<id>" or "input:<id>" */
  key: string;
  kind: "result" | "input";
  generationId: string;
  url: string;
  /** the request's parameters (empty for an input) */
  params: Record<string, unknown>;
  width: number | null;
  height: number | null;
  /** what the edit changed (output_resolution input): null when the generation has no mask */
  mask?: ChangeMask | null;
}

/** A finished generation's change mask (issue 16): a greyscale PNG, white where it changed. */
export interface ChangeMask {
  url: string;
  /** 0–1 of the frame, null when not given */
  fraction: number | null;
  /** the change covered most of the frame: the result is the upscaled output */
  wholeFrame: boolean;
}

/** The change mask a generation carries (change_mask_url, changed_fraction, whole_frame), if any. */
export function changeMaskOf(g: object): ChangeMask | null {
  const r = g as Record<string, unknown>;
  if (typeof r.change_mask_url !== "string" || r.change_mask_url === "") return null;
  const f = r.changed_fraction;
  return {
    url: r.change_mask_url,
    fraction: typeof f === "number" && Number.isFinite(f) ? Math.min(1, Math.max(0, f)) : null,
    wholeFrame: r.whole_frame === true,
  };
}

/** "changed 12 % of the frame"; "whole frame" when the change covered it (then the upscaled output). */
export function maskCaption(m: ChangeMask): string {
  if (m.wholeFrame) return "whole frame (the edit covered most of it: this is the model's output, upscaled)";
  if (m.fraction === null) return "changed part of the frame";
  const pct = m.fraction * 100;
  const shown = pct > 0 && pct < 1 ? "< 1" : pct > 99 && pct < 100 ? "> 99" : String(Math.round(pct));
  return `changed ${shown} % of the frame`;
}

/** Parameters a caption may name, in the order a person reads them. */
export const COMPARED_PARAMS = [
  "prompt",
  "seed",
  "guidance",
  "num_inference_steps",
  "aspect_ratio",
  "fast",
  "output_format",
  "output_quality",
] as const;

const LABELS: Record<string, string> = { num_inference_steps: "steps" };

export function resultItem(h: HistoryItem): ViewItem | null {
  if (!h.result_url) return null;
  const params: Record<string, unknown> = {};
  for (const p of COMPARED_PARAMS) if (h[p] !== undefined && h[p] !== null) params[p] = h[p];
  return {
    key: `result:${h.generation_id}`,
    kind: "result",
    generationId: h.generation_id,
    url: h.result_url,
    params,
    width: h.width,
    height: h.height,
    mask: changeMaskOf(h),
  };
}

/** The input's view; null for text-to-image, which has none. */
export function inputItem(h: HistoryItem): ViewItem | null {
  if (!h.input_url) return null;
  return {
    key: `input:${h.generation_id}`,
    kind: "input",
    generationId: h.generation_id,
    url: h.input_url,
    params: {},
    width: h.input_width,
    height: h.input_height,
  };
}

const show = (name: string, v: unknown) =>
  name === "prompt"
    ? `“${String(v).length > 48 ? `${String(v).slice(0, 47)}…` : String(v)}”`
    : `${LABELS[name] ?? name} ${String(v)}`;

/**
 * One caption per item naming the parameters that differ across the items (prompt, seed,
 * guidance …); an input is "input". Items that differ in nothing say so.
 */
export function diffLabels(items: readonly ViewItem[]): string[] {
  const results = items.filter((i) => i.kind === "result");
  const differing = COMPARED_PARAMS.filter((p) => {
    const seen = new Set(results.map((r) => JSON.stringify(r.params[p])));
    return seen.size > 1;
  });
  return items.map((i) => {
    if (i.kind === "input") return "input";
    if (results.length < 2)
      return [show("prompt", i.params.prompt), `seed ${String(i.params.seed)}`].join(" · ");
    if (differing.length === 0) return "same parameters";
    return differing.map((p) => show(p, i.params[p] ?? "default")).join(" · ");
  });
}
