import { describe, expect, it } from "vitest";
import { historyItem } from "../session/fakes.js";
import { diffLabels, inputItem, resultItem, type ViewItem } from "./compare.js";

const r = (id: string, extra: Record<string, unknown>) =>
  resultItem(historyItem(id, null, extra)) as ViewItem;

describe("compare captions", () => {
  it("name the parameters that differ", () => {
    const a = r("a", { prompt: "hat", seed: 1, guidance: 2.5 });
    const b = r("b", { prompt: "hat", seed: 2, guidance: 2.5 });
    const c = r("c", { prompt: "scarf", seed: 2, guidance: 3.5 });
    expect(diffLabels([a, b])).toEqual(["seed 1", "seed 2"]);
    expect(diffLabels([a, c])).toEqual(["“hat” · seed 1 · guidance 2.5", "“scarf” · seed 2 · guidance 3.5"]);
    expect(diffLabels([a, inputItem(historyItem("a"))])).toEqual(["“hat” · seed 1", "input"]);
    expect(diffLabels([a, r("a2", { prompt: "hat", seed: 1, guidance: 2.5 })])).toEqual([
      "same parameters",
      "same parameters",
    ]);
  });
});
