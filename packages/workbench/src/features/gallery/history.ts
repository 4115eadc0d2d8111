// History items (GET /api/history, typed by @kontext/client): what a person reads of one, what
// goes back into the form on reuse, and how deep in its edit chain it sits.
import type { HistoryItem } from "@kontext/client";

export type { HistoryItem };

/**
 * The parameters to put back in the form (the form's fields, from the schema): the stored
 * request plus the seed used. input_image is there only when it was a URL; otherwise the
 * caller loads input_url.
 */
export function reuseParams(item: HistoryItem, fieldNames: readonly string[]): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (const name of fieldNames)
    if (item[name] !== undefined && item[name] !== null) params[name] = item[name];
  params.seed = item.seed;
  return params;
}

/** Short label of a history item's parameters: "28 steps · guidance 2.5 · seed 42 · 1184×880". */
export function summary(item: HistoryItem): string {
  const parts = [
    `${String(item.num_inference_steps)} steps`,
    `guidance ${String(item.guidance)}`,
    `seed ${item.seed}`,
  ];
  if (item.width && item.height) parts.push(`${item.width}×${item.height}`);
  return parts.join(" · ");
}

/** Steps from the chain's first edit to `id` (1 for a first edit), over every item known. */
export function chainDepth(known: ReadonlyMap<string, HistoryItem>, id: string): number {
  let depth = 0;
  const seen = new Set<string>();
  let cur = known.get(id);
  while (cur && !seen.has(cur.generation_id)) {
    depth++;
    seen.add(cur.generation_id);
    cur = cur.parent_generation_id ? known.get(cur.parent_generation_id) : undefined;
  }
  return depth;
}
