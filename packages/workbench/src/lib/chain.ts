// Edit chains: "continue editing" makes a result the next input; the chain is the path from the
// first edit to the newest step reached, and any step of it (or the original image) is one click
// from being the input again. Paths come from the history's parent links (the server's record),
// so a chain survives reloads.
import type { HistoryItem } from "./history.js";

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
  | { type: "leave" }; // a new image was chosen: no chain

export function chainReducer(state: ChainState, action: ChainAction): ChainState {
  switch (action.type) {
    case "continue":
      return { baseId: action.id, tipId: action.id };
    case "back":
      return state.tipId === null ? state : { ...state, baseId: action.id };
    case "leave":
      return NO_CHAIN;
  }
}

/** From the chain's first step to `id`, following parent links (empty when `id` is unknown). */
export function chainPath(items: readonly HistoryItem[], id: string | null): HistoryItem[] {
  const byId = new Map(items.map((i) => [i.generation_id, i]));
  const path: HistoryItem[] = [];
  const seen = new Set<string>();
  let cur = id ? byId.get(id) : undefined;
  while (cur && !seen.has(cur.generation_id)) {
    path.unshift(cur);
    seen.add(cur.generation_id);
    cur = cur.parent_generation_id ? byId.get(cur.parent_generation_id) : undefined;
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
  /** this step's image is the form's input */
  current: boolean;
}

export function chainSteps(items: readonly HistoryItem[], state: ChainState): ChainStep[] {
  const path = chainPath(items, state.tipId);
  const first = path[0];
  if (!first) return [];
  return [
    {
      index: 0,
      id: null,
      label: "Original image",
      imageUrl: first.input_url,
      current: state.baseId === null,
    },
    ...path.map((g, i) => ({
      index: i + 1,
      id: g.generation_id,
      label: `Step ${i + 1}: ${g.prompt}`,
      imageUrl: g.result_url,
      current: g.generation_id === state.baseId,
    })),
  ];
}
