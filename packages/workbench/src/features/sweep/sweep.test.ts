import type { EditRequest } from "@kontext/client";
import { describe, expect, it } from "vitest";
import type { Field } from "../form/schemaForm.js";
import { defaultAxis, parseValues, Sweep, sweepableFields, sweepCells, sweepLabels } from "./sweep.js";

const f = (name: string, kind: Field["kind"], extra: Partial<Field> = {}): Field => ({
  name,
  label: name,
  description: "",
  kind,
  required: false,
  integer: false,
  addition: false,
  ...extra,
});
const FIELDS = [
  f("prompt", "textarea"),
  f("num_inference_steps", "range", { integer: true, min: 4, max: 50 }),
  f("guidance", "range", { min: 0, max: 10 }),
  f("seed", "number", { integer: true }),
  f("aspect_ratio", "select", { options: ["1:1", "16:9"] }),
  f("num_generations", "range", { integer: true, min: 1, max: 4 }),
];

describe("sweeps", () => {
  it("offer prompt variants and numbers, not the seed (its own axis) nor num_generations", () => {
    expect(sweepableFields(FIELDS).map((x) => x.name)).toEqual([
      "prompt",
      "num_inference_steps",
      "guidance",
      "aspect_ratio",
    ]);
    expect(defaultAxis(FIELDS)).toBe("guidance");
    expect(defaultAxis([])).toBe("");
  });

  it("parse values, prompts one per line, and say which item is wrong", () => {
    expect(parseValues("1.5, 2.5 2.5;3", FIELDS[2] as Field)).toEqual({ values: [1.5, 2.5, 3], error: null });
    expect(parseValues("4, 2", FIELDS[1] as Field).error).toBe("2 is below 4");
    expect(parseValues("4.5", FIELDS[1] as Field).error).toBe("4.5 is not an integer");
    expect(parseValues("3:2", FIELDS[4] as Field).error).toBe("3:2 is not one of 1:1, 16:9");
    expect(parseValues("add a hat, please\n\n make it blue ", FIELDS[0] as Field)).toEqual({
      values: ["add a hat, please", "make it blue"],
      error: null,
    });
    expect(parseValues("1 2", null)).toEqual({ values: [1, 2], error: null });
  });

  it("label rows by the value (prompts quoted) and columns by seed", () => {
    const spec = { param: "prompt", values: ["add a hat", "add a scarf"], seeds: [1, 2] };
    expect(sweepLabels(spec)).toEqual({ rows: ["“add a hat”", "“add a scarf”"], cols: ["seed 1", "seed 2"] });
    expect(sweepCells(spec).map((c) => c.overrides)).toEqual([
      { seed: 1, prompt: "add a hat" },
      { seed: 2, prompt: "add a hat" },
      { seed: 1, prompt: "add a scarf" },
      { seed: 2, prompt: "add a scarf" },
    ]);
  });

  it("run one generation per cell, row by row, over the form's request", async () => {
    const sent: EditRequest[] = [];
    const sweep = new Sweep({
      submitOne: async (b) => {
        sent.push(b);
        return `g${sent.length}`;
      },
      cancel: async () => undefined,
    });
    const base = {
      model: "m",
      input_image: "x",
      prompt: "p",
      guidance: 2.5,
      num_generations: 3,
    } as EditRequest;
    await sweep.run({ param: "guidance", values: [1.5, 3.5], seeds: [7] }, base);
    expect(sent.map((b) => [b.guidance, b.seed, b.num_generations, b.prompt])).toEqual([
      [1.5, 7, 1, "p"],
      [3.5, 7, 1, "p"],
    ]);
    expect(sweep.get().ids).toEqual(["g1", "g2"]);
  });
});
