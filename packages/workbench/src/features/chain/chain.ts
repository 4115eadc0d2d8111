// Edit chains: "continue editing" makes a result the next input; the chain is the path from the
// first edit to the newest step reached, and any step of it (or the original image) is one click
// from being the input again. Paths come from the history's parent links (the server's record),
// so a chain survives reloads; a run from a step becomes the chain's new tip (a branch when that
// step already had a next one).
import type { HistoryItem } from "@kontext/client";

export interface ChainState {
  /** The generation whose result is the form's input; null: the chain's original image (or no chain). */
  baseId: string | null;
  /** The newest step of the chain on show; null: no chain. */
  tipId: string | null;
}

export const NO_CHAIN: ChainState = { baseId: null, tipId: null };

export type ChainAction =
  | { type: "continue"; id: string } // a result becomes the next input (and the chain's tip)
  | { type: "back"; id: string | null } // an earlier step (null: the original) becomes the input
  | { type: "ran"; id: string } // a run from the current input finished: it is the chain's tip
  | { type: "tip"; id: string } // show another branch
  | { type: "leave" }; // a new image was chosen: no chain

export function chainReducer(state: ChainState, action: ChainAction): ChainState {
  switch (action.type) {
    case "continue":
      return { baseId: action.id, tipId: action.id };
    case "back":
      return state.tipId === null ? state : { ...state, baseId: action.id };
    case "ran":
    case "tip":
      return { ...state, tipId: action.id };
    case "leave":
      return NO_CHAIN;
  }
}

/** From the chain's first step to `id`, following parent links (empty when `id` is unknown). */
export function chainPath(items: ReadonlyMap<string, HistoryItem>, id: string | null): HistoryItem[] {
  const path: HistoryItem[] = [];
  const seen = new Set<string>();
  let cur = id ? items.get(id) : undefined;
  while (cur && !seen.has(cur.generation_id)) {
    path.unshift(cur);
    seen.add(cur.generation_id);
    cur = cur.parent_generation_id ? items.get(cur.parent_generation_id) : undefined;
  }
  return path;
}

/** What the chain strip shows: the original image, then each step's result. */
export interface ChainStep {
  /** 0: the original image; k: the k-th edit */
  index: number;
  /** the generation (null for the original image) */
  id: string | null;
  label: string;
  imageUrl: string | null;
  thumbUrl: string | null;
  /** this step's image is the form's input */
  current: boolean;
  /** other edits made from the same image as this one (branches), newest first */
  branches: HistoryItem[];
}

export function chainSteps(items: ReadonlyMap<string, HistoryItem>, state: ChainState): ChainStep[] {
  const path = chainPath(items, state.tipId);
  const first = path[0];
  if (!first) return [];
  const children = new Map<string | null, HistoryItem[]>();
  for (const i of items.values()) {
    if (i.status !== "succeeded") continue;
    const list = children.get(i.parent_generation_id) ?? [];
    list.push(i);
    children.set(i.parent_generation_id, list);
  }
  const branchesOf = (g: HistoryItem) =>
    (g.parent_generation_id ? (children.get(g.parent_generation_id) ?? []) : [])
      .filter((c) => c.generation_id !== g.generation_id)
      .sort((a, b) => b.enqueued_at.localeCompare(a.enqueued_at));
  // a chain that starts from text-to-image has no original image: it starts at that result
  const generated = !first.input_url;
  const original: ChainStep[] = generated
    ? []
    : [
        {
          index: 0,
          id: null,
          label: "Original image",
          imageUrl: first.input_url,
          thumbUrl: first.input_thumbnail_url ?? first.input_url,
          current: state.baseId === null,
          branches: [],
        },
      ];
  return [
    ...original,
    ...path.map((g, i) => ({
      index: i + 1,
      id: g.generation_id,
      label: generated && i === 0 ? `Generated: ${g.prompt}` : `Step ${generated ? i : i + 1}: ${g.prompt}`,
      imageUrl: g.result_url,
      thumbUrl: g.thumbnail_url ?? g.result_url,
      current: g.generation_id === state.baseId,
      branches: branchesOf(g),
    })),
  ];
}

/** The newest step reached from `id` (following its newest child): a branch's tip. */
export function tipOf(items: ReadonlyMap<string, HistoryItem>, id: string): string {
  let cur = id;
  const seen = new Set<string>();
  for (;;) {
    seen.add(cur);
    const next = [...items.values()]
      .filter((i) => i.parent_generation_id === cur && i.status === "succeeded" && !seen.has(i.generation_id))
      .sort((a, b) => b.enqueued_at.localeCompare(a.enqueued_at))[0];
    if (!next) return cur;
    cur = next.generation_id;
  }
}
