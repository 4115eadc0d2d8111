// The history as GET /api/history lists it (newest first), and the tree of edit chains built
// from each generation's parent_generation_id.

export interface HistoryItem {
  generation_id: string;
  status: "queued" | "processing" | "succeeded" | "failed" | "cancelled";
  prompt: string;
  seed: number;
  result_url: string | null;
  input_url: string;
  input_width: number;
  input_height: number;
  parent_generation_id: string | null;
  error_message: string | null;
  enqueued_at: string;
  completed_at: string | null;
  width: number | null;
  height: number | null;
  timings: { queue: number; inference: number; encode: number } | null;
  /** every request parameter kept with the generation (prompt, guidance, ...) */
  [param: string]: unknown;
}

export interface TreeNode {
  item: HistoryItem;
  /** 1 for a chain's first step */
  depth: number;
  children: TreeNode[];
}

/**
 * Chains as a forest: a generation whose parent is listed sits under it (oldest child first, as
 * the chain was made); the rest are roots, newest first. A parent outside the list (deleted,
 * or filtered out by a search) makes its child a root.
 */
export function buildTree(items: readonly HistoryItem[]): TreeNode[] {
  const nodes = new Map(
    items.map((item) => [item.generation_id, { item, depth: 1, children: [] } as TreeNode]),
  );
  const roots: TreeNode[] = [];
  for (const item of items) {
    const node = nodes.get(item.generation_id) as TreeNode;
    const parent = item.parent_generation_id ? nodes.get(item.parent_generation_id) : undefined;
    if (parent && !isAncestor(node, parent, nodes)) parent.children.unshift(node);
    else roots.push(node);
  }
  const setDepth = (n: TreeNode, depth: number) => {
    n.depth = depth;
    for (const c of n.children) setDepth(c, depth + 1);
  };
  for (const r of roots) setDepth(r, 1);
  return roots;
}

// Guards against a cycle in bad data (a generation cannot be its own ancestor).
function isAncestor(node: TreeNode, of: TreeNode, nodes: Map<string, TreeNode>): boolean {
  let cur: TreeNode | undefined = of;
  const seen = new Set<string>();
  while (cur && !seen.has(cur.item.generation_id)) {
    if (cur === node) return true;
    seen.add(cur.item.generation_id);
    const pid: string | null = cur.item.parent_generation_id;
    cur = pid ? nodes.get(pid) : undefined;
  }
  return false;
}

/** The tree in reading order, each node once, for a flat list that shows depth by indent. */
export function flatten(roots: readonly TreeNode[]): TreeNode[] {
  const out: TreeNode[] = [];
  const walk = (n: TreeNode) => {
    out.push(n);
    for (const c of n.children) walk(c);
  };
  for (const r of roots) walk(r);
  return out;
}

/** Client-side prompt filter (the server's `q` does the same over the whole history). */
export function matchesPrompt(item: HistoryItem, query: string): boolean {
  const q = query.trim().toLowerCase();
  return q === "" || item.prompt.toLowerCase().includes(q);
}

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

/** Short label of a history item's parameters: "28 steps · guidance 2.5 · seed 42". */
export function summary(item: HistoryItem): string {
  const parts = [
    `${String(item.num_inference_steps)} steps`,
    `guidance ${String(item.guidance)}`,
    `seed ${item.seed}`,
  ];
  if (item.width && item.height) parts.push(`${item.width}×${item.height}`);
  return parts.join(" · ");
}
