// The sizes below were printed by the engine's own rule (engine/kontext_engine/resolution.py).
import { describe, expect, it } from "vitest";
import { outputSize } from "../../src/lib/outputSize.js";

const ENGINE: Array<[string, number, number, number, number]> = [
  ["match_input_image", 40, 30, 1184, 880],
  ["match_input_image", 1000, 1000, 1024, 1024],
  ["match_input_image", 100, 300, 672, 1568],
  ["match_input_image", 3000, 1000, 1568, 672],
  ["match_input_image", 1920, 1080, 1392, 752],
  ["1:1", 1, 1, 1024, 1024],
  ["16:9", 1, 1, 1392, 752],
  ["21:9", 1, 1, 1568, 672],
  ["3:2", 1, 1, 1248, 832],
  ["2:3", 1, 1, 832, 1248],
  ["4:5", 1, 1, 944, 1104],
  ["5:4", 1, 1, 1104, 944],
  ["3:4", 1, 1, 880, 1184],
  ["4:3", 1, 1, 1184, 880],
  ["9:16", 1, 1, 752, 1392],
  ["9:21", 1, 1, 672, 1568],
];

describe("output size", () => {
  it.each(ENGINE)("%s from %i×%i is %i×%i, as the engine makes it", (ratio, w, h, ow, oh) => {
    expect(outputSize(ratio, { width: w, height: h })).toEqual({ width: ow, height: oh });
  });

  it("is unknown for match_input_image until the input's size is", () => {
    expect(outputSize("match_input_image", null)).toBeNull();
    expect(outputSize("16:9", null)).toEqual({ width: 1392, height: 752 });
  });
});
