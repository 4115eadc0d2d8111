import { describe, expect, it } from "vitest";
import { historyItem } from "../session/fakes.js";
import { chainReducer, chainSteps, NO_CHAIN, tipOf } from "./chain.js";

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const items = new Map(
  [
    historyItem("a", null, { prompt: "hat", enqueued_at: at(1) }),
    historyItem("b", "a", { prompt: "blue hat", enqueued_at: at(2) }),
    historyItem("c", "b", { prompt: "scarf", enqueued_at: at(3) }),
    historyItem("d", "a", { prompt: "green hat", enqueued_at: at(4) }),
  ].map((i) => [i.generation_id, i]),
);

describe("edit chains", () => {
  it("show the original, then each step, the input marked", () => {
    const steps = chainSteps(items, { baseId: "b", tipId: "c" });
    expect(steps.map((s) => [s.label, s.current])).toEqual([
      ["Original image", false],
      ["Step 1: hat", false],
      ["Step 2: blue hat", true],
      ["Step 3: scarf", false],
    ]);
    expect(steps[0]?.imageUrl).toBe("/api/history/a/input");
    expect(steps[1]?.thumbUrl).toBe("/api/history/a/thumbnail");
  });

  it("make the step just run the tip, and show the branch beside it", () => {
    let s = chainReducer(NO_CHAIN, { type: "continue", id: "a" });
    s = chainReducer(s, { type: "ran", id: "d" });
    const steps = chainSteps(items, s);
    expect(steps.map((x) => x.label)).toEqual(["Original image", "Step 1: hat", "Step 2: green hat"]);
    expect(steps[2]?.branches.map((b) => b.generation_id)).toEqual(["b"]);
    expect(tipOf(items, "b")).toBe("c");
  });

  it("start at the generated image when the chain began with text-to-image (no original)", () => {
    const t2i = new Map(
      [
        historyItem("g", null, {
          prompt: "a lighthouse",
          input_url: null,
          input_thumbnail_url: null,
        } as never),
        historyItem("e", "g", { prompt: "add a moon" }),
      ].map((i) => [i.generation_id, i]),
    );
    const steps = chainSteps(t2i, { baseId: "e", tipId: "e" });
    expect(steps.map((s) => [s.label, s.id, s.current])).toEqual([
      ["Generated: a lighthouse", "g", false],
      ["Step 1: add a moon", "e", true],
    ]);
  });

  it("go back to a step or the original, and leave when a new image is chosen", () => {
    let s = chainReducer(NO_CHAIN, { type: "back", id: "a" });
    expect(s).toEqual(NO_CHAIN); // no chain: nothing to go back to
    s = chainReducer({ baseId: "c", tipId: "c" }, { type: "back", id: null });
    expect(s).toEqual({ baseId: null, tipId: "c" });
    expect(chainReducer(s, { type: "leave" })).toEqual(NO_CHAIN);
  });
});
