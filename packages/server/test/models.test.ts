// The models endpoints, the served schema (the one the server validates with) and openapi.json.
import { readFileSync } from "node:fs";
import path from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildOpenApi } from "../src/api/openapi.js";
import { EditRequest } from "../src/schema/flux-kontext-dev.js";
import { ANNOTATION_KEYWORDS } from "../src/schema/validate.js";
import { type Harness, here, makeHarness } from "./helpers.js";

let h: Harness;
beforeAll(async () => {
  h = await makeHarness();
});
afterAll(async () => h.close());

describe("models", () => {
  it("lists the model", async () => {
    const res = await h.app.inject({ url: "/api/ai/models" });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.object).toBe("list");
    expect(body.data.map((m: { id: string }) => m.id)).toEqual(["flux-kontext-dev"]);
  });

  it("describes one model with its request schema, saying when the demo model is loaded", async () => {
    const m = (await h.app.inject({ url: "/api/ai/models/flux-kontext-dev" })).json();
    for (const k of [
      "id",
      "object",
      "created",
      "owned_by",
      "display_name",
      "description",
      "capabilities",
      "endpoint",
    ]) {
      expect(m).toHaveProperty(k);
    }
    expect(m.object).toBe("model");
    expect(m.endpoint).toBe("/images/edit");
    expect(m.demo).toBe(true); // the fake engine reports the tiny model
    expect(m.description).toContain("DEMO");
    expect(m.request_schema).toEqual(m.json_request_schema);
    const schema = m.json_request_schema;
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(["input_image", "prompt"]);
    for (const [name, prop] of Object.entries(
      schema.properties as Record<string, { description?: string }>,
    )) {
      expect(prop.description, `${name} has a description`).toBeTruthy();
    }
    // It is the schema the server validates with.
    expect(JSON.parse(JSON.stringify(EditRequest))).toEqual({
      ...schema,
      $schema: undefined,
      $id: schema.$id,
    });
    // webhook is a `uri`; the form annotation (x-kontext-form) is a keyword strict mode must be told of
    const validate = new Ajv2020({
      strict: true,
      formats: { uri: true },
      keywords: [...ANNOTATION_KEYWORDS],
    }).compile(schema);
    expect(validate({ input_image: "x", prompt: "p" })).toBe(true);
    expect(validate({ input_image: "x", prompt: "p", guidance: 11 })).toBe(false);
  });

  it("serves the text-to-image schema beside it: the edit's fields without input_image and those that need one", async () => {
    const m = (await h.app.inject({ url: "/api/ai/models/flux-kontext-dev" })).json();
    expect(m.generate_endpoint).toBe("/images/generate");
    const gen = m.json_generate_request_schema;
    expect(gen.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(gen.required).toEqual(["prompt"]);
    const edit = m.json_request_schema.properties as Record<string, unknown>;
    const props = gen.properties as Record<string, { enum?: string[]; default?: unknown }>;
    const editOnly = [
      "input_image",
      "input_image_2",
      "input_image_3",
      "input_image_4",
      "mask_image",
      "strength",
      "reference_method",
      "output_resolution",
      "preserve_unedited",
    ];
    expect(Object.keys(props).sort()).toEqual(
      Object.keys(edit)
        .filter((k) => !editOnly.includes(k))
        .sort(),
    );
    for (const [name, prop] of Object.entries(props))
      if (name !== "aspect_ratio") expect(prop, `${name} as the edit has it`).toEqual(edit[name]);
    expect(props.aspect_ratio?.enum).not.toContain("match_input_image");
    expect(props.aspect_ratio?.default).toBe("1:1");
    const validate = new Ajv2020({
      strict: true,
      formats: { uri: true },
      keywords: [...ANNOTATION_KEYWORDS],
    }).compile(gen);
    expect(validate({ prompt: "a fox", aspect_ratio: "16:9", loras: [{ name: "x", scale: 0.5 }] })).toBe(
      true,
    );
    expect(validate({ prompt: "a fox", input_image: "x" })).toBe(false);
    expect(validate({ prompt: "a fox", aspect_ratio: "match_input_image" })).toBe(false);
  });

  it("answers 404 for an unknown model", async () => {
    const res = await h.app.inject({ url: "/api/ai/models/nope" });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({
      error: { type: "model_not_found", title: "Not found", detail: "Model not found: nope" },
      status: "error",
      status_message: "Model not found: nope",
    });
  });
});

describe("openapi", () => {
  it("committed openapi.json matches the code (run `npm run openapi -w @kontext/server` after a change)", () => {
    const committed = JSON.parse(readFileSync(path.join(here, "../openapi.json"), "utf8"));
    expect(committed).toEqual(JSON.parse(JSON.stringify(buildOpenApi())));
  });

  it("is served, with a docs page", async () => {
    const doc = (await h.app.inject({ url: "/openapi.json" })).json();
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/api/ai/images/edit", "/api/ai/queue", "/api/events"]),
    );
    const page = await h.app.inject({ url: "/docs" });
    expect(page.statusCode).toBe(200);
    expect(page.headers["content-type"]).toContain("text/html");
    expect(page.body).toContain("/openapi.json");
  });

  it("answers unknown routes in the error envelope", async () => {
    const res = await h.app.inject({ url: "/nope" });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.type).toBe("route_not_found");
  });
});
