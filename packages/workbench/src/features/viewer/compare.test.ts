import { describe, expect, it } from "vitest";
import { historyItem } from "../session/fakes.js";
import { type ChangeMask, diffLabels, inputItem, maskCaption, resultItem, type ViewItem } from "./compare.js";

const r = (id: string, extra: Record<string, unknown>) =>
  resultItem(historyItem(id, null, extra)) as ViewItem;

describe("compare captions", () => {
  it("name the parameters that differ", () => {
    const a = r("a", { prompt: "hat", seed: 1, guidance: 2.5 });
    const b = r("b", { prompt: "hat", seed: 2, guidance: 2.5 });
    const c = r("c", { prompt: "scarf", seed: 2, guidance: 3.5 });
    expect(diffLabels([a, b])).toEqual(["seed 1", "seed 2"]);
    expect(diffLabels([a, c])).toEqual(["“hat” · seed 1 · guidance 2.5", "“scarf” · seed 2 · guidance 3.5"]);
    expect(diffLabels([a, inputItem(historyItem("a")) as ViewItem])).toEqual(["“hat” · seed 1", "input"]);
    expect(diffLabels([a, r("a2", { prompt: "hat", seed: 1, guidance: 2.5 })])).toEqual([
      "same parameters",
      "same parameters",
    ]);
  });
});

describe("the change mask", () => {
  it("comes with a result that has one, captioned with how much of the frame changed", () => {
    const plain = r("p", {});
    expect(plain.mask).toBeNull();
    const edited = r("e", {
      change_mask_url: "http://127.0.0.1:8080/results/e.mask.png",
      changed_fraction: 0.1234,
      whole_frame: false,
    });
    expect(edited.mask).toEqual({
      url: "http://127.0.0.1:8080/results/e.mask.png",
      fraction: 0.1234,
      wholeFrame: false,
    });
    expect(maskCaption(edited.mask as ChangeMask)).toBe("changed 12 % of the frame");
    expect(maskCaption({ url: "m", fraction: 0.003, wholeFrame: false })).toBe("changed < 1 % of the frame");
    expect(maskCaption({ url: "m", fraction: 0, wholeFrame: false })).toBe("changed 0 % of the frame");
    expect(maskCaption({ url: "m", fraction: 0.93, wholeFrame: true })).toMatch(/^whole frame/);
    // deleted files: no mask to show
    expect(r("d", { change_mask_url: null, changed_fraction: 0.2 }).mask).toBeNull();
  });
});
