import { describe, expect, it } from "vitest";
import { jsonSchemaOf, MODELS } from "../../../server/src/schema/models.js";
import { type Field, fieldsOf, type JsonObjectSchema } from "../../src/lib/schemaForm.js";
import { parseValues, sweepableFields, sweepCells, sweepLabels } from "../../src/lib/sweep.js";

const fields = fieldsOf(jsonSchemaOf(MODELS[0] as (typeof MODELS)[number]) as unknown as JsonObjectSchema);
const guidance = fields.find((f) => f.name === "guidance") as Field;
const steps = fields.find((f) => f.name === "num_inference_steps") as Field;

describe("sweeps", () => {
  it("offers the numeric and choice parameters, not the seed (it has its own axis)", () => {
    const names = sweepableFields(fields).map((f) => f.name);
    expect(names).toContain("guidance");
    expect(names).toContain("aspect_ratio");
    expect(names).not.toContain("seed");
    expect(names).not.toContain("prompt");
  });

  it("parses value lists against the field's range and type", () => {
    expect(parseValues("1.5, 2.5 3.5", guidance)).toEqual({ values: [1.5, 2.5, 3.5], error: null });
    expect(parseValues("2.5, 11", guidance).error).toBe("11 is above 10");
    expect(parseValues("4, 8.5", steps).error).toBe("8.5 is not an integer");
    expect(parseValues("", guidance).error).toBe("give at least one value");
    expect(parseValues("1, 2, 2", null)).toEqual({ values: [1, 2], error: null }); // seeds
  });

  it("makes a labelled grid: parameter values as rows, seeds as columns", () => {
    const spec = { param: "guidance", values: [1.5, 3.5], seeds: [1, 2] };
    expect(sweepLabels(spec)).toEqual({ rows: ["guidance 1.5", "guidance 3.5"], cols: ["seed 1", "seed 2"] });
    expect(sweepCells(spec).map((c) => [c.row, c.col, c.overrides])).toEqual([
      [0, 0, { seed: 1, guidance: 1.5 }],
      [0, 1, { seed: 2, guidance: 1.5 }],
      [1, 0, { seed: 1, guidance: 3.5 }],
      [1, 1, { seed: 2, guidance: 3.5 }],
    ]);
    expect(sweepCells({ param: null, values: [], seeds: [5, 6, 7] }).map((c) => c.label)).toEqual([
      "form values, seed 5",
      "form values, seed 6",
      "form values, seed 7",
    ]);
  });
});
