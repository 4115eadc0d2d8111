import { describe, expect, it } from "vitest";
import { chainPath, chainReducer, chainSteps, NO_CHAIN } from "../../src/lib/chain.js";
import { item } from "./fixtures.js";

const ITEMS = [item("c", "b", "add a scarf"), item("b", "a", "make it blue"), item("a", null, "add a hat")];

describe("edit chain state", () => {
  it("continuing twice makes a three-image chain with the newest step current", () => {
    let s = chainReducer(NO_CHAIN, { type: "continue", id: "a" });
    s = chainReducer(s, { type: "continue", id: "b" });
    expect(s).toEqual({ baseId: "b", tipId: "b" });
    const steps = chainSteps(ITEMS, s);
    expect(steps.map((x) => [x.label, x.current])).toEqual([
      ["Original image", false],
      ["Step 1: add a hat", false],
      ["Step 2: make it blue", true],
    ]);
    expect(steps[0]?.imageUrl).toBe("/api/history/a/input");
    expect(steps[2]?.imageUrl).toBe("/results/b.webp");
  });

  it("going back keeps the chain on show and moves the current step; a new image leaves it", () => {
    let s = chainReducer(NO_CHAIN, { type: "continue", id: "c" });
    s = chainReducer(s, { type: "back", id: "a" });
    expect(chainSteps(ITEMS, s).map((x) => x.current)).toEqual([false, true, false, false]);
    s = chainReducer(s, { type: "back", id: null });
    expect(chainSteps(ITEMS, s)[0]?.current).toBe(true);
    expect(chainReducer(s, { type: "leave" })).toEqual(NO_CHAIN);
    expect(chainReducer(NO_CHAIN, { type: "back", id: "a" })).toBe(NO_CHAIN); // no chain to go back in
  });

  it("follows parent links from the history, and stops at what it does not know", () => {
    expect(chainPath(ITEMS, "c").map((i) => i.generation_id)).toEqual(["a", "b", "c"]);
    expect(chainPath(ITEMS.slice(0, 2), "c").map((i) => i.generation_id)).toEqual(["b", "c"]);
    expect(chainPath(ITEMS, "zz")).toEqual([]);
    expect(chainSteps(ITEMS, NO_CHAIN)).toEqual([]);
  });
});
