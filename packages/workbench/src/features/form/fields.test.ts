// Issue 15's and 16's request fields as the schema-driven form reads them: the controls each
// gets, the negative prompt shown (and sent) only with true guidance, preserve_unedited only with
// output_resolution input, the LoRA list, and the browser's check in the server's words.
import { describe, expect, it } from "vitest";
import { newFieldsSchema } from "./fixtures.js";
import {
  asFormSchema,
  crossFieldErrors,
  defaultValues,
  displayOrder,
  type Field,
  fieldsOf,
  isShown,
  requestBody,
  shownValue,
} from "./schemaForm.js";
import { validateRequest } from "./validate.js";

const schema = asFormSchema(newFieldsSchema());
const fields = fieldsOf(schema);
const field = (name: string) => fields.find((f) => f.name === name) as Field;
const body = (values: Record<string, unknown>) =>
  requestBody("flux-kontext-dev", fields, { ...defaultValues(fields), prompt: "p", ...values });
const check = (values: Record<string, unknown>) =>
  validateRequest({ ...newFieldsSchema(), ...schema }, { ...body(values), input_image: "x" });

describe("the new request fields in the form", () => {
  it("gets a control for each: sliders with round steps, a list of adapters, a choice, a checkbox", () => {
    expect(field("negative_prompt").kind).toBe("textarea");
    expect(field("true_cfg_scale")).toMatchObject({
      label: "True guidance",
      kind: "range",
      min: 1,
      max: 10,
      step: 0.05,
      default: 1,
    });
    expect(field("guidance").step).toBe(0.1); // as before
    expect(field("strength")).toMatchObject({
      kind: "range",
      min: 0,
      exclusiveMin: true,
      max: 1,
      step: 0.01,
    });
    expect(field("reference_method")).toMatchObject({ kind: "select", options: ["offset", "index"] });
    expect(field("loras")).toMatchObject({ kind: "adapters", maxItems: 4, addition: true, default: [] });
    expect(field("loras").itemProps?.scale).toMatchObject({ minimum: -4, maximum: 4 });
    expect(field("output_resolution")).toMatchObject({ kind: "select", options: ["bucket", "input"] });
    expect(field("output_resolution").note).toMatch(/^bucket: about one megapixel.*input: .*own size/);
    expect(field("preserve_unedited").kind).toBe("boolean");
    expect(field("preserve_unedited").default).toBeUndefined();
    expect(shownValue(field("preserve_unedited"), {})).toBe(true); // the server's default with input
    expect(field("preserve_unedited").note).toMatch(/bit for bit/);
  });

  it("shows the negative prompt only with true guidance above 1, right after it, and sends it only then", () => {
    const order = displayOrder(fields).map((f) => f.name);
    expect(order.indexOf("negative_prompt")).toBe(order.indexOf("true_cfg_scale") + 1);
    const values = defaultValues(fields);
    expect(isShown(field("negative_prompt"), fields, values)).toBe(false);
    expect(body({ negative_prompt: "blur" })).not.toHaveProperty("negative_prompt");
    expect(isShown(field("negative_prompt"), fields, { ...values, true_cfg_scale: 1.5 })).toBe(true);
    expect(body({ true_cfg_scale: 1.5, negative_prompt: "blur" })).toMatchObject({
      true_cfg_scale: 1.5,
      negative_prompt: "blur",
    });
    // shown and empty: the empty prompt is the negative prompt (true guidance runs, as diffusers)
    expect(body({ true_cfg_scale: 3 })).toMatchObject({ negative_prompt: "" });
  });

  it("shows and sends preserve_unedited only with output_resolution input (the server refuses it with bucket)", () => {
    const order = displayOrder(fields).map((f) => f.name);
    expect(order.indexOf("preserve_unedited")).toBe(order.indexOf("output_resolution") + 1);
    expect(body({})).not.toHaveProperty("preserve_unedited");
    expect(body({})).not.toHaveProperty("output_resolution"); // an addition at its default
    expect(body({ output_resolution: "input" })).toMatchObject({ output_resolution: "input" });
    expect(body({ output_resolution: "input" })).not.toHaveProperty("preserve_unedited"); // the server's default
    expect(body({ output_resolution: "bucket", preserve_unedited: false })).not.toHaveProperty(
      "preserve_unedited",
    );
    expect(body({ output_resolution: "input", preserve_unedited: false })).toMatchObject({
      preserve_unedited: false,
    });
    expect(check({ output_resolution: "input" })).toEqual({});
    expect(crossFieldErrors(body({ output_resolution: "input", aspect_ratio: "16:9" }))).toEqual({
      aspect_ratio:
        'must be match_input_image with output_resolution input (the result has the input\'s own shape), got "16:9"',
    });
    expect(crossFieldErrors(body({ output_resolution: "input" }))).toEqual({});
  });

  it("sends the chosen LoRAs, and none while the list is empty", () => {
    expect(body({})).not.toHaveProperty("loras");
    expect(body({ loras: [{ name: "a", scale: 0.5 }] }).loras).toEqual([{ name: "a", scale: 0.5 }]);
  });

  it("checks them in the browser in the server's words", () => {
    expect(check({ strength: 0 })).toEqual({ strength: "must be a number above 0 and at most 1, got 0" });
    expect(check({ true_cfg_scale: 11 })).toEqual({
      true_cfg_scale: "must be a number from 1 to 10, got 11",
    });
    const five = Array.from({ length: 5 }, (_, i) => ({ name: `l${i}`, scale: 1 }));
    expect(check({ loras: five }).loras).toMatch(
      /^must be a list of at most 4 objects \{name a non-empty string of at most 512 characters, scale a number from -4 to 4\}, got /,
    );
    expect(check({ loras: [{ name: "a", scale: 5 }] }).loras).toMatch(/^must be a list of at most 4/);
    expect(check({ true_cfg_scale: 2, negative_prompt: "x".repeat(10_001) }).negative_prompt).toMatch(
      /^must be a string of at most 10000 characters/,
    );
  });
});
