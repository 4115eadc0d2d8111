import { describe, expect, it } from "vitest";
import { buildTree, flatten, matchesPrompt, reuseParams, summary } from "../../src/lib/history.js";
import { item } from "./fixtures.js";

// Newest first, as GET /api/history answers: a chain a → b → c with a branch b → d, and e alone.
const ITEMS = [item("e", null), item("d", "b"), item("c", "b"), item("b", "a"), item("a", null)];

describe("history tree", () => {
  it("shows chains as a tree: steps under their parent, oldest child first; roots newest first", () => {
    const roots = buildTree(ITEMS);
    expect(roots.map((r) => r.item.generation_id)).toEqual(["e", "a"]);
    const rows = flatten(roots).map((n) => `${"  ".repeat(n.depth - 1)}${n.item.generation_id}`);
    expect(rows).toEqual(["e", "a", "  b", "    c", "    d"]);
  });

  it("makes a root of a step whose parent is not listed (expired, or filtered out by a search)", () => {
    const roots = buildTree(ITEMS.filter((i) => i.generation_id !== "a"));
    expect(roots.map((r) => [r.item.generation_id, r.depth])).toEqual([
      ["e", 1],
      ["b", 1],
    ]);
  });

  it("survives a cycle in bad data", () => {
    const roots = buildTree([item("x", "y"), item("y", "x")]);
    expect(
      flatten(roots)
        .map((n) => n.item.generation_id)
        .sort(),
    ).toEqual(["x", "y"]);
  });

  it("matches prompts in any case, and reuses parameters with the seed used", () => {
    expect(matchesPrompt(item("a", null, "Add a red Hat"), "red hat")).toBe(true);
    expect(matchesPrompt(item("a", null, "Add a red Hat"), "blue")).toBe(false);
    const it2 = item("a", null, "p", {
      seed: 77,
      guidance: 3.5,
      aspect_ratio: "16:9",
      model: "flux-kontext-dev",
    });
    expect(reuseParams(it2, ["prompt", "guidance", "aspect_ratio", "seed", "input_image"])).toEqual({
      prompt: "p",
      guidance: 3.5,
      aspect_ratio: "16:9",
      seed: 77,
    });
    expect(summary(it2)).toBe("4 steps · guidance 3.5 · seed 77 · 1184×880");
  });
});
