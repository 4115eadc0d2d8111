// Every parameter: in range accepted; out of range, wrong type, unknown field → 400 naming it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, makeHarness, pngDataUri } from "./helpers.js";

let h: Harness;
let image: string;
beforeAll(async () => {
  h = await makeHarness({ config: { maxQueue: 1000 } });
  image = await pngDataUri();
});
afterAll(async () => h.close());

const post = (body: unknown, url = "/api/ai/queue") =>
  h.app.inject({ method: "POST", url, payload: body as object });

const accepted: Array<[string, unknown]> = [
  ["model", "flux-kontext-dev"],
  ["aspect_ratio", "match_input_image"],
  ["aspect_ratio", "1:1"],
  ["aspect_ratio", "21:9"],
  ["aspect_ratio", "9:21"],
  ["num_inference_steps", 4],
  ["num_inference_steps", 50],
  ["guidance", 0],
  ["guidance", 10],
  ["guidance", 2.5],
  ["seed", 0],
  ["seed", Number.MAX_SAFE_INTEGER],
  ["output_format", "webp"],
  ["output_format", "jpg"],
  ["output_format", "png"],
  ["output_quality", 0],
  ["output_quality", 100],
  ["disable_safety_checker", true],
  ["disable_safety_checker", false],
  ["response_format", "url"],
  ["response_format", "b64_json"],
  ["num_generations", 1],
  ["num_generations", 4],
  ["prompt", "x"],
  ["prompt", "y".repeat(10_000)],
];

const rejected: Array<[string, unknown]> = [
  ["aspect_ratio", "7:5"],
  ["aspect_ratio", 1],
  ["num_inference_steps", 3],
  ["num_inference_steps", 51],
  ["num_inference_steps", 4.5],
  ["num_inference_steps", "28"],
  ["guidance", -0.1],
  ["guidance", 10.01],
  ["guidance", "2.5"],
  ["seed", -1],
  ["seed", Number.MAX_SAFE_INTEGER + 2],
  ["seed", 1.5],
  ["seed", "42"],
  ["output_format", "gif"],
  ["output_format", "jpeg"],
  ["output_quality", -1],
  ["output_quality", 101],
  ["output_quality", 80.5],
  ["disable_safety_checker", "true"],
  ["disable_safety_checker", 1],
  ["response_format", "b64"],
  ["num_generations", 0],
  ["num_generations", 5],
  ["num_generations", "2"],
  ["prompt", ""],
  ["prompt", "   "],
  ["prompt", "y".repeat(10_001)],
  ["prompt", 5],
  ["input_image", ""],
  ["input_image", 5],
  ["model", 5],
  ["stream", "yes"],
];

describe("request validation", () => {
  it.each(accepted)("accepts %s = %j", async (field, value) => {
    const res = await post({
      input_image: image,
      prompt: "make it blue",
      num_inference_steps: 4,
      [field]: value,
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().generations.length).toBeGreaterThanOrEqual(1);
  });

  it.each(rejected)("rejects %s = %j with 400 naming the field", async (field, value) => {
    const before = h.store.count("queued") + h.store.count("processing") + h.store.count("succeeded");
    const res = await post({ input_image: image, prompt: "make it blue", [field]: value });
    expect(res.statusCode).toBe(400);
    const body = res.json();
    expect(body.status).toBe("error");
    expect(body.error.type).toBe("invalid_request");
    expect(body.error.fields).toContain(field);
    expect(body.error.detail).toContain(`${field}:`);
    expect(body.error.detail).toContain("got");
    expect(body.status_message).toBe(body.error.detail);
    const after = h.store.count("queued") + h.store.count("processing") + h.store.count("succeeded");
    expect(after).toBe(before);
  });

  it("names the rule and the value", async () => {
    const res = await post({ input_image: image, prompt: "p", num_inference_steps: 51 });
    expect(res.json().error.detail).toBe("num_inference_steps: must be an integer from 4 to 50, got 51");
  });

  it("rejects unknown fields, naming them", async () => {
    const res = await post({ input_image: image, prompt: "p", sharpness: 0.5, style: "x" });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.fields).toEqual(expect.arrayContaining(["sharpness", "style"]));
    expect(res.json().error.detail).toContain("sharpness: unknown field");
  });

  it.each([
    [{ strength: 0 }, "strength: must be a number above 0 and at most 1, got 0"],
    [{ true_cfg_scale: 0.5 }, "true_cfg_scale: must be a number from 1 to 10, got 0.5"],
    [{ reference_method: "side" }, "reference_method: must be one of offset, index"],
    [
      { loras: [{ name: "a", weight: 1 }] },
      "loras: must be a list of at most 4 objects {name a non-empty string of at most 512 characters, scale a number from -4 to 4}",
    ],
    [{ loras: [{ name: "a", scale: 5 }] }, "loras: must be a list"],
    [{ loras: [1, 2, 3, 4, 5].map((i) => ({ name: `l${i}` })) }, "loras: must be a list"],
  ])("refuses the issue 15 fields out of range: %j", async (extra, detail) => {
    const res = await post({ input_image: image, prompt: "p", ...extra });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.fields).toEqual([Object.keys(extra)[0]]);
    expect(res.json().error.detail).toContain(detail);
  });

  it("takes the issue 15 fields in range", async () => {
    const res = await post({
      input_image: image,
      prompt: "p",
      negative_prompt: "",
      true_cfg_scale: 2,
      strength: 1,
      reference_method: "index",
      loras: [],
    });
    expect(res.statusCode).not.toBe(400);
  });

  it.each([
    ["input_image", "/api/ai/images/edit"],
    ["prompt", "/api/ai/queue"],
  ])("requires %s (%s)", async (field, url) => {
    const body: Record<string, unknown> = { input_image: image, prompt: "p" };
    delete body[field];
    const res = await post(body, url);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.fields).toEqual([field]);
  });

  it("answers 404 Model not found for an unknown model", async () => {
    const res = await post({ model: "flux-pro", input_image: image, prompt: "p" });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.detail).toBe("Model not found: flux-pro");
  });

  it("takes num_generations > 1 only on the queue", async () => {
    const res = await post({ input_image: image, prompt: "p", num_generations: 2 }, "/api/ai/images/edit");
    expect(res.statusCode).toBe(400);
    expect(res.json().error.fields).toEqual(["num_generations"]);
  });

  it("refuses stream on the queue", async () => {
    const res = await post({ input_image: image, prompt: "p", stream: true });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.fields).toEqual(["stream"]);
  });

  it.each([
    ["not json", "{nope", "application/json", 400, "invalid_json"],
    ["an array", "[1]", "application/json", 400, "invalid_request"],
    ["empty", "", "application/json", 400, "invalid_json"],
    ["text/plain", "hello", "text/plain", 415, "unsupported_media_type"],
  ])("rejects a body that is %s", async (_name, payload, type, status, code) => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      payload,
      headers: { "content-type": type },
    });
    expect(res.statusCode).toBe(status);
    expect(res.json().error.type).toBe(code);
  });

  it("validates the list query", async () => {
    expect((await h.app.inject({ url: "/api/ai/queue?status=done" })).json().error.fields).toEqual([
      "status",
    ]);
    expect((await h.app.inject({ url: "/api/ai/queue?limit=0" })).statusCode).toBe(400);
    expect((await h.app.inject({ url: "/api/ai/queue?color=red" })).json().error.fields).toEqual(["color"]);
    expect((await h.app.inject({ url: "/api/ai/queue?status=all&limit=5" })).statusCode).toBe(200);
  });
});

describe("text-to-image request validation (POST /api/ai/images/generate, and the queue without input_image)", () => {
  const generate = (body: Record<string, unknown>) => post(body, "/api/ai/images/generate");
  const stored = () =>
    ["queued", "processing", "succeeded", "failed"].reduce((n, s) => n + h.store.count(s as never), 0);

  it.each([
    [{ input_image: "data:image/png;base64,iVBORw0KGgo=" }, "input_image", "input_image: unknown field"],
    [{ aspect_ratio: "match_input_image" }, "aspect_ratio", "aspect_ratio: must be one of 1:1, 16:9"],
    [{ strength: 0.5 }, "strength", "strength: unknown field"],
    [{ output_resolution: "input" }, "output_resolution", "output_resolution: unknown field"],
    [{ preserve_unedited: true }, "preserve_unedited", "preserve_unedited: unknown field"],
    [{ reference_method: "index" }, "reference_method", "reference_method: unknown field"],
    [
      { num_inference_steps: 51 },
      "num_inference_steps",
      "num_inference_steps: must be an integer from 4 to 50, got 51",
    ],
    [{ guidance: 10.5 }, "guidance", "guidance: must be a number from 0 to 10, got 10.5"],
    [{ output_quality: 101 }, "output_quality", "output_quality: must be an integer from 0 to 100, got 101"],
    [{ seed: -1 }, "seed", "seed: must be an integer from 0 to"],
    [{ loras: [{ name: "a", scale: 5 }] }, "loras", "loras: must be a list"],
    [{ num_generations: 2 }, "num_generations", "must be 1 on POST /api/ai/images/generate"],
  ])("refuses %j with 400 naming %s, nothing queued", async (extra, field, detail) => {
    const before = stored();
    const res = await generate({ prompt: "a red fox", ...extra });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().error.fields).toEqual([field]);
    expect(res.json().error.detail).toContain(detail);
    expect(stored()).toBe(before);
  });

  it("requires the prompt", async () => {
    const res = await generate({ aspect_ratio: "1:1" });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.fields).toEqual(["prompt"]);
  });

  it.each([
    [{ prompt: "p", aspect_ratio: "match_input_image" }],
    [{ prompt: "p", strength: 0.5 }],
    [{ prompt: "p", output_resolution: "input" }],
    [{}],
  ])(
    "on the queue, a body without input_image that is no text-to-image request names input_image: %j",
    async (body) => {
      const before = stored();
      const res = await post(body);
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().error.fields[0]).toBe("input_image");
      expect(res.json().error.detail).toMatch(/^input_image: required/);
      expect(stored()).toBe(before);
    },
  );

  it("on the queue, a body without input_image that fits the generate schema is queued as text-to-image", async () => {
    const res = await post({
      prompt: "a lighthouse",
      aspect_ratio: "16:9",
      num_inference_steps: 4,
      num_generations: 2,
    });
    expect(res.statusCode, res.body).toBe(200);
    const ids = res.json().generations.map((g: { generation_id: string }) => g.generation_id);
    expect(ids).toHaveLength(2);
    for (const id of ids) expect(h.store.get(id)?.input).toBeNull();
  });

  it("keeps input_image required on the edit endpoint", async () => {
    const res = await post({ prompt: "a lighthouse", aspect_ratio: "1:1" }, "/api/ai/images/edit");
    expect(res.statusCode).toBe(400);
    expect(res.json().error.fields).toEqual(["input_image"]);
  });
});
