// The form is the model's json_request_schema, as GET /api/ai/models/flux-kontext-dev serves it.
import { describe, expect, it } from "vitest";
import { jsonSchemaOf, MODELS } from "../../../server/src/schema/models.js";
import {
  defaultValues,
  type Field,
  fieldsOf,
  type JsonObjectSchema,
  NOT_IN_FORM,
  requestBody,
  valuesFrom,
} from "../../src/lib/schemaForm.js";

const schema = jsonSchemaOf(MODELS[0] as (typeof MODELS)[number]) as unknown as JsonObjectSchema;
const fields = fieldsOf(schema);
const field = (name: string) => fields.find((f) => f.name === name) as Field;

describe("form from the schema", () => {
  it("has a field for every request property but model and stream, in schema order", () => {
    const props = Object.keys(schema.properties).filter((p) => !NOT_IN_FORM.includes(p));
    expect(fields.map((f) => f.name)).toEqual(props);
    for (const f of fields) {
      expect(f.label, f.name).not.toBe("");
      expect(f.description, f.name).toBe(schema.properties[f.name]?.description);
    }
  });

  it("takes kinds, ranges, choices and defaults from the schema", () => {
    expect(field("input_image")).toMatchObject({ kind: "image", required: true });
    expect(field("prompt")).toMatchObject({ kind: "textarea", required: true, label: "Prompt" });
    expect(field("num_inference_steps")).toMatchObject({
      kind: "range",
      label: "Inference steps",
      min: 4,
      max: 50,
      default: 28,
      integer: true,
      step: 1,
    });
    expect(field("guidance")).toMatchObject({ kind: "range", min: 0, max: 10, default: 2.5, integer: false });
    expect(field("guidance").step).toBeCloseTo(0.1);
    expect(field("aspect_ratio").kind).toBe("select");
    expect(field("aspect_ratio").options).toEqual(schema.properties.aspect_ratio?.enum);
    expect(field("seed")).toMatchObject({ kind: "number", integer: true, min: 0 });
    expect(field("seed").default).toBeUndefined();
    expect(field("disable_safety_checker")).toMatchObject({ kind: "boolean", default: false });
  });

  it("builds the body: hosted parameters explicit, Kontext additions only when changed, empty left out", () => {
    const values = {
      ...defaultValues(fields),
      input_image: "data:image/png;base64,AAAA",
      prompt: "add a hat",
    };
    const body = requestBody("flux-kontext-dev", fields, values);
    expect(body).toMatchObject({
      model: "flux-kontext-dev",
      input_image: "data:image/png;base64,AAAA",
      prompt: "add a hat",
      num_inference_steps: 28,
      guidance: 2.5,
      aspect_ratio: "match_input_image",
    });
    expect(body).not.toHaveProperty("seed"); // empty: the server picks one
    expect(body).not.toHaveProperty("stream");
    for (const f of fields.filter((f) => f.addition)) expect(body, f.name).not.toHaveProperty(f.name);

    const changed = requestBody("flux-kontext-dev", fields, { ...values, seed: 42, guidance: 3.5 });
    expect(changed).toMatchObject({ seed: 42, guidance: 3.5 });
    // Keys follow the schema's order, so the copied code reads like the form.
    expect(Object.keys(changed).slice(0, 3)).toEqual(["model", "input_image", "prompt"]);
  });

  it("puts a stored request back into the form, defaults for what it lacks", () => {
    const v = valuesFrom(fields, { prompt: "p", guidance: 4, seed: 9 });
    expect(v).toMatchObject({ prompt: "p", guidance: 4, seed: 9, num_inference_steps: 28 });
  });
});
