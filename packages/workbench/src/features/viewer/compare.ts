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
  };
}

export function inputItem(h: HistoryItem): ViewItem {
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
