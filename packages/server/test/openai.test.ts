// The OpenAI-compatible endpoints: the real `openai` npm package calls images.edit and
// images.generate against the server on the real engine (tiny model), configured only with
// baseURL; and the rules of the edit form and of the generation body.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI, { toFile } from "openai";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Harness, makeHarness, realEngine } from "./helpers.js";

let h: Harness;
let base: string;
let dir: string;
let png: Buffer;
/** OpenAI's kind of mask for `png`: transparent (alpha 0) on the left half = edit, opaque elsewhere. */
let mask: Buffer;
/** An RGBA PNG with no fully transparent pixel (alpha 254 at most): nothing to edit. */
let opaqueRgba: Buffer;

beforeAll(async () => {
  h = await makeHarness({ command: realEngine(inject("python"), inject("tinyModelDir")) });
  await h.app.listen({ host: "127.0.0.1", port: 0 });
  base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  dir = mkdtempSync(path.join(tmpdir(), "kontext-openai-"));
  png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 30, b: 30 } } })
    .png()
    .toBuffer();
  writeFileSync(path.join(dir, "photo.png"), png);
  const rgba = Buffer.alloc(64 * 48 * 4, 255);
  for (let y = 0; y < 48; y++) for (let x = 0; x < 32; x++) rgba[(y * 64 + x) * 4 + 3] = 0;
  mask = await sharp(rgba, { raw: { width: 64, height: 48, channels: 4 } })
    .png()
    .toBuffer();
  opaqueRgba = await sharp(Buffer.alloc(64 * 48 * 4, 254), { raw: { width: 64, height: 48, channels: 4 } })
    .png()
    .toBuffer();
});
afterAll(async () => {
  await h?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A multipart request as the SDKs send it, for inject(). */
async function multipart(fields: Record<string, string | Blob | Array<string | Blob>>) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    for (const x of Array.isArray(v) ? v : [v]) {
      if (typeof x === "string") form.append(k, x);
      else form.append(k, x, "photo.png");
    }
  }
  const req = new Request("http://x/", { method: "POST", body: form });
  return {
    payload: Buffer.from(await req.arrayBuffer()),
    headers: { "content-type": req.headers.get("content-type") as string },
  };
}

const edit = async (fields: Record<string, string | Blob | Array<string | Blob>>) =>
  h.app.inject({ method: "POST", url: "/v1/images/edits", ...(await multipart(fields)) });

describe("the openai package against Kontext (baseURL only)", () => {
  const client = () => new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused-without-KONTEXT_API_KEYS" });

  it("images.edit as written for OpenAI: a PNG of the asked size, base64", async () => {
    const { createReadStream } = await import("node:fs");
    const openai = client();
    const result = await openai.images.edit({
      image: createReadStream(path.join(dir, "photo.png")),
      prompt: "make the square blue",
      size: "1024x1024",
    });
    expect(result.data).toHaveLength(1);
    const bytes = Buffer.from(result.data?.[0]?.b64_json as string, "base64");
    const meta = await sharp(bytes).metadata();
    expect(meta.format).toBe("png");
    expect([meta.width, meta.height]).toEqual([1024, 1024]);
    expect(result.size).toBe("1024x1024");
    expect(result.output_format).toBe("png");
  }, 300_000); // 28 steps (the default) at 1 MP on a CPU that may be shared

  it("url results, webp, two images with their own seeds (n), Kontext parameters passed along", async () => {
    const params = {
      image: await toFile(png, "photo.png", { type: "image/png" }),
      prompt: "add a hat",
      n: 2,
      size: "1536x1024",
      response_format: "url",
      output_format: "webp",
      output_compression: 70,
      num_inference_steps: 4, // a Kontext parameter, sent as one more form field
      seed: 11,
    } as OpenAI.ImageEditParamsNonStreaming;
    const result = await client().images.edit(params);
    const data = result.data as Array<{ url: string; seed: number }>;
    expect(data).toHaveLength(2);
    expect(data.map((d) => d.seed)).toEqual([11, 12]);
    for (const d of data) {
      expect(d.url).toMatch(new RegExp(`^${base}/results/`));
      const res = await fetch(d.url);
      expect(res.status).toBe(200);
      const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
      expect(meta.format).toBe("webp");
      expect((meta.width as number) / (meta.height as number)).toBeCloseTo(1.5, 1);
    }
  }, 300_000);

  it("image[] with reference images and OpenAI's mask: input_image_2..3 in order, the mask as mask_image (transparent = change)", async () => {
    const refA = await sharp({ create: { width: 32, height: 32, channels: 3, background: "#20c020" } })
      .png()
      .toBuffer();
    const refB = await sharp({ create: { width: 40, height: 24, channels: 3, background: "#2020c0" } })
      .png()
      .toBuffer();
    const file = (b: Buffer, name: string) => toFile(b, name, { type: "image/png" });
    const result = await client().images.edit({
      image: [await file(png, "photo.png"), await file(refA, "a.png"), await file(refB, "b.png")],
      mask: await file(mask, "mask.png"),
      prompt: "paint the left half green",
      num_inference_steps: 4,
      seed: 5,
    } as OpenAI.ImageEditParamsNonStreaming);
    const id = (result.data as Array<{ generation_id: string }>)[0]?.generation_id;
    const item = (await h.app.inject({ url: "/api/history" }))
      .json()
      .generations.find((g: { generation_id: string }) => g.generation_id === id);
    expect(item.status).toBe("succeeded");
    expect([item.input_width, item.input_height]).toEqual([64, 48]);
    expect(item.references.map((r: Record<string, unknown>) => [r.field, r.width, r.height])).toEqual([
      ["input_image_2", 32, 32],
      ["input_image_3", 40, 24],
    ]);
    expect(item.mask).toMatchObject({ field: "mask_image", width: 64, height: 48 });
    // The mask the edit ran with: white (change) where OpenAI's mask was transparent, black elsewhere.
    const stored = await h.app.inject({ url: new URL(item.mask.url).pathname });
    expect(stored.statusCode).toBe(200);
    const grey = await sharp(stored.rawPayload).extractChannel(0).raw().toBuffer();
    expect([grey[0], grey[31], grey[32], grey[63], grey[64 * 47 + 10]]).toEqual([255, 255, 0, 0, 255]);
  }, 300_000);

  it("a bad parameter is the SDK's BadRequestError naming the OpenAI field", async () => {
    const err = await client()
      .images.edit({ image: await toFile(png, "photo.png", { type: "image/png" }), prompt: "p", n: 5 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.status).toBe(400);
    expect(e.message).toContain("n: must be an integer from 1 to 4, got 5");
    expect(e.param).toBe("n");
    expect(e.code).toBe("invalid_request");
  });

  it("an unknown model is the SDK's NotFoundError", async () => {
    const err = await client()
      .images.edit({
        image: await toFile(png, "photo.png", { type: "image/png" }),
        prompt: "p",
        model: "gpt-image-1",
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as Error).message).toContain("Model not found: gpt-image-1");
  });

  it("models.list and models.retrieve", async () => {
    const openai = client();
    const ids: string[] = [];
    for await (const m of openai.models.list()) ids.push(m.id);
    expect(ids).toEqual(["flux-kontext-dev"]);
    const m = await openai.models.retrieve("flux-kontext-dev");
    expect(m).toMatchObject({ id: "flux-kontext-dev", object: "model", owned_by: "black-forest-labs" });
  });
});

describe("POST /v1/images/edits: the form's rules, in OpenAI's error shape", () => {
  const image = () => new Blob([png], { type: "image/png" });
  const maskBlob = () => new Blob([mask], { type: "image/png" });
  const cases: Array<[string, Record<string, string | Blob | Array<string | Blob>>, number, string, string]> =
    [
      [
        "n out of range",
        { image: image(), prompt: "p", n: "9" },
        400,
        "n",
        "n: must be an integer from 1 to 4, got 9",
      ],
      [
        "n not a number",
        { image: image(), prompt: "p", n: "two" },
        400,
        "n",
        'n: must be an integer from 1 to 4, got "two"',
      ],
      [
        "a size of no supported ratio",
        { image: image(), prompt: "p", size: "1000x300" },
        400,
        "size",
        "size: must be auto or WIDTHxHEIGHT with a ratio of 1:1, 16:9",
      ],
      [
        "a mask sent as text",
        { image: image(), prompt: "p", mask: "everything" },
        400,
        "mask",
        "mask: send it as a file, not a text field",
      ],
      ["two masks", { image: image(), prompt: "p", mask: [maskBlob(), maskBlob()] }, 400, "mask", "mask"],
      [
        "a mask that is not an image",
        { image: image(), prompt: "p", mask: new Blob([Buffer.from("not a png")]) },
        422,
        "mask",
        "mask: ",
      ],
      [
        "a quality level",
        { image: image(), prompt: "p", quality: "high" },
        400,
        "quality",
        "quality: Kontext has no quality levels; set num_inference_steps",
      ],
      [
        "output_format jpg (OpenAI says jpeg)",
        { image: image(), prompt: "p", output_format: "jpg" },
        400,
        "output_format",
        'output_format: must be one of png, jpeg, webp, got "jpg"',
      ],
      [
        "an unknown field",
        { image: image(), prompt: "p", stength: "1" },
        400,
        "stength",
        "stength: unknown field",
      ],
      ["no image", { prompt: "p" }, 400, "image", "image: required"],
      [
        "a fifth image",
        { "image[]": [image(), image(), image(), image(), image()], prompt: "p" },
        400,
        "image",
        "image: at most 4 files: the image to edit and up to 3 reference images (input_image_2..4), got 5 files",
      ],
      ["no prompt", { image: image() }, 400, "prompt", "prompt: required"],
      [
        "a Kontext parameter out of range",
        { image: image(), prompt: "p", num_inference_steps: "2" },
        400,
        "num_inference_steps",
        "num_inference_steps: must be an integer from 4 to 50, got 2",
      ],
      [
        "an image that is not one",
        { image: new Blob([Buffer.from("not an image at all")]), prompt: "p" },
        422,
        "image",
        "image: ",
      ],
      [
        "stream",
        { image: image(), prompt: "p", stream: "true" },
        400,
        "stream",
        "stream: not supported here",
      ],
    ];
  it.each(cases)("%s", async (_what, fields, status, param, message) => {
    const res = await edit(fields);
    expect(res.statusCode, res.body).toBe(status);
    const body = res.json();
    expect(body.error.param).toBe(param);
    expect(body.error.message).toContain(message);
    expect(body.error.type).toBe("invalid_request_error");
  });

  it("the values of unsupported OpenAI parameters that change nothing are accepted", async () => {
    const res = await edit({
      image: image(),
      prompt: "p",
      n: "0", // to stop at validation, after the unsupported parameters were looked at
      stream: "false",
      partial_images: "0",
      quality: "auto",
      background: "opaque",
      moderation: "auto",
      user: "someone",
    });
    expect(res.json().error.param).toBe("n");
  });

  it("image[] (how the SDK sends a list) is the same as image; up to 4 files and a mask pass the form", async () => {
    const res = await edit({ "image[]": image(), prompt: "p", n: "0" });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.param).toBe("n"); // got past the image check
    const four = await edit({
      "image[]": [image(), image(), image(), image()],
      mask: maskBlob(),
      prompt: "p",
      n: "0",
    });
    expect(four.json().error.param).toBe("n");
  });

  it("a mask without an alpha channel, or with no fully transparent pixel, is 400 naming mask", async () => {
    // built here: the table above is made before beforeAll writes the images
    const noAlpha = await edit({ image: image(), prompt: "p", mask: image() });
    expect(noAlpha.statusCode, noAlpha.body).toBe(400);
    expect(noAlpha.json().error).toMatchObject({ param: "mask", type: "invalid_request_error" });
    expect(noAlpha.json().error.message).toContain(
      "mask: must have an alpha channel: its fully transparent pixels mark where to edit",
    );
    const opaque = await edit({
      image: image(),
      prompt: "p",
      mask: new Blob([opaqueRgba], { type: "image/png" }),
    });
    expect(opaque.statusCode, opaque.body).toBe(400);
    expect(opaque.json().error.param).toBe("mask");
    expect(opaque.json().error.message).toContain("mask: nothing to edit: no pixel is fully transparent");
  });

  it("a bad reference image is refused naming image and which file it was", async () => {
    const res = await edit({ "image[]": [image(), new Blob([Buffer.from("no image")])], prompt: "p" });
    expect(res.statusCode, res.body).toBe(422);
    expect(res.json().error.param).toBe("image");
    expect(res.json().error.message).toMatch(/^image\[1\]: /);
  });

  it("a JSON body is refused with 415 saying to send multipart", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/v1/images/edits",
      payload: { prompt: "p", image: "x" },
    });
    expect(res.statusCode).toBe(415);
    expect(res.json().error.message).toMatch(/multipart\/form-data/);
  });

  it("a broken multipart body is 400, not a server error", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/v1/images/edits",
      headers: { "content-type": "multipart/form-data" },
      payload: "x",
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/^the multipart\/form-data body could not be read: /);
  });

  it("unknown /v1 routes answer in OpenAI's shape", async () => {
    const res = await h.app.inject({ method: "POST", url: "/v1/images/variations" });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toMatchObject({ code: "route_not_found", type: "invalid_request_error" });
  });

  it("GET /v1/models/:id of an unknown model is 404", async () => {
    const res = await h.app.inject({ url: "/v1/models/dall-e-2" });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.message).toBe("Model not found: dall-e-2");
  });
});

describe("images.generate (text-to-image) through the openai package", () => {
  const client = () => new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused-without-KONTEXT_API_KEYS" });
  const STEPS = 4;

  it("as written for OpenAI: a base64 PNG, 1:1 for size auto, the image POST /api/ai/images/generate makes", async () => {
    const result = await client().images.generate({
      prompt: "a lighthouse at dusk",
      num_inference_steps: STEPS, // a Kontext parameter, one more field
      seed: 5,
    } as OpenAI.ImageGenerateParamsNonStreaming);
    expect(result.data).toHaveLength(1);
    expect(result.size).toBe("1024x1024");
    expect(result.output_format).toBe("png");
    const first = result.data?.[0] as { b64_json: string; seed: number; url?: string };
    expect(first.seed).toBe(5);
    expect(first.url).toBeUndefined();
    const bytes = Buffer.from(first.b64_json, "base64");
    const meta = await sharp(bytes).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 1024, 1024]);

    // The same request on the hosted endpoint: the same image, bit for bit.
    const hosted = await h.app.inject({
      method: "POST",
      url: "/api/ai/images/generate",
      payload: {
        prompt: "a lighthouse at dusk",
        num_inference_steps: STEPS,
        seed: 5,
        output_format: "png",
        response_format: "b64_json",
      },
    });
    expect(hosted.statusCode, hosted.body).toBe(200);
    expect(Buffer.from(hosted.json().images[0].b64_json, "base64")).toEqual(bytes);
  }, 300_000);

  it("n 2 of 1536x1024 as urls in webp: seeds seed + i, each a text-to-image generation with its settings", async () => {
    const result = await client().images.generate({
      prompt: "a red fox",
      n: 2,
      size: "1536x1024",
      response_format: "url",
      output_format: "webp",
      output_compression: 70,
      num_inference_steps: STEPS,
      seed: 11,
    } as OpenAI.ImageGenerateParamsNonStreaming);
    const data = result.data as Array<{ url: string; seed: number; generation_id: string }>;
    expect(data.map((d) => d.seed)).toEqual([11, 12]);
    expect(result.output_format).toBe("webp");
    const images: Buffer[] = [];
    for (const d of data) {
      expect(d.url).toMatch(new RegExp(`^${base}/results/`));
      const res = await fetch(d.url);
      expect(res.status).toBe(200);
      const bytes = Buffer.from(await res.arrayBuffer());
      images.push(bytes);
      const meta = await sharp(bytes).metadata();
      expect(meta.format).toBe("webp");
      expect(`${meta.width}x${meta.height}`).toBe(result.size);
      expect((meta.width as number) / (meta.height as number)).toBeCloseTo(1.5, 1);
      const view = (await h.app.inject({ url: `/api/ai/queue/${d.generation_id}` })).json();
      expect(view).toMatchObject({ status: "succeeded", aspect_ratio: "3:2", output_quality: 70 });
      expect(view).not.toHaveProperty("input_image");
    }
    expect(images[0]).not.toEqual(images[1]);
  }, 300_000);

  it("a bad field is the SDK's BadRequestError naming it", async () => {
    const refused = async (params: Record<string, unknown>) => {
      const err = await client()
        .images.generate({ prompt: "p", ...params } as OpenAI.ImageGenerateParamsNonStreaming)
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      const e = err as InstanceType<typeof OpenAI.BadRequestError>;
      expect(e.status).toBe(400);
      return e;
    };
    const n = await refused({ n: 5 });
    expect(n.message).toContain("n: must be an integer from 1 to 4, got 5");
    expect([n.param, n.code]).toEqual(["n", "invalid_request"]);
    const typo = await refused({ stength: 0.5 });
    expect(typo.message).toContain("stength: unknown field");
    expect(typo.param).toBe("stength");
    const quality = await refused({ quality: "hd" });
    expect(quality.message).toContain("quality: Kontext has no quality levels");
    expect(quality.param).toBe("quality");
  });

  it("an unknown model is the SDK's NotFoundError", async () => {
    const err = await client()
      .images.generate({ prompt: "p", model: "dall-e-3" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as Error).message).toContain("Model not found: dall-e-3");
  });
});

describe("POST /v1/images/generations: the body's rules, in OpenAI's error shape", () => {
  const generate = (payload: unknown) =>
    h.app.inject({ method: "POST", url: "/v1/images/generations", payload: payload as object });
  const cases: Array<[string, Record<string, unknown>, string, string]> = [
    ["n out of range", { prompt: "p", n: 9 }, "n", "n: must be an integer from 1 to 4, got 9"],
    [
      "a size of no supported ratio (DALL·E 3's 1792x1024)",
      { prompt: "p", size: "1792x1024" },
      "size",
      'size: must be auto or WIDTHxHEIGHT with a ratio of 1:1, 16:9, 21:9, 3:2, 2:3, 4:5, 5:4, 3:4, 4:3, 9:16, 9:21 (e.g. 1024x1024, 1536x1024, 1024x1536), got "1792x1024"',
    ],
    [
      "a quality level",
      { prompt: "p", quality: "high" },
      "quality",
      "quality: Kontext has no quality levels",
    ],
    ["a style", { prompt: "p", style: "vivid" }, "style", "style: Kontext has no styles"],
    [
      "a transparent background",
      { prompt: "p", background: "transparent" },
      "background",
      "background: Kontext outputs are always opaque",
    ],
    [
      "stream",
      { prompt: "p", stream: true },
      "stream",
      "stream: not supported here; stream with POST /api/ai/images/generate",
    ],
    ["partial images", { prompt: "p", partial_images: 2 }, "partial_images", "partial_images: not supported"],
    [
      "output_format jpg (OpenAI says jpeg)",
      { prompt: "p", output_format: "jpg" },
      "output_format",
      'output_format: must be one of png, jpeg, webp, got "jpg"',
    ],
    [
      "output_compression out of range",
      { prompt: "p", output_compression: 101 },
      "output_compression",
      "output_compression: must be an integer from 0 to 100, got 101",
    ],
    ["an unknown field", { prompt: "p", stength: 1 }, "stength", "stength: unknown field"],
    [
      "an edit's input image (OpenAI calls it image)",
      { prompt: "p", input_image: "x" },
      "image",
      "image: an edit's field: text-to-image has no input image (edit with POST /v1/images/edits)",
    ],
    [
      "an edit's strength",
      { prompt: "p", strength: 0.5 },
      "strength",
      "strength: an edit's field: text-to-image has no input image",
    ],
    ["no prompt", { n: 1 }, "prompt", "prompt: required"],
    [
      "a Kontext parameter out of range",
      { prompt: "p", num_inference_steps: 2 },
      "num_inference_steps",
      "num_inference_steps: must be an integer from 4 to 50, got 2",
    ],
  ];
  it.each(cases)("%s", async (_what, payload, param, message) => {
    const res = await generate(payload);
    expect(res.statusCode, res.body).toBe(400);
    const body = res.json();
    expect(body.error.param).toBe(param);
    expect(body.error.message).toContain(message);
    expect(body.error.type).toBe("invalid_request_error");
  });

  it("null for OpenAI's parameters means their default, and values that change nothing are accepted", async () => {
    const res = await generate({
      prompt: "p",
      n: 0, // to stop at validation, after the other parameters were looked at
      size: null,
      response_format: null,
      output_format: null,
      model: null,
      quality: "auto",
      background: "opaque",
      moderation: "auto",
      style: null,
      stream: false,
      partial_images: 0,
      user: "someone",
    });
    expect(res.json().error.param).toBe("n");
    const seed = await generate({ prompt: "p", seed: null }); // a Kontext field keeps its own rules
    expect(seed.json().error).toMatchObject({ param: "seed", message: expect.stringContaining("got null") });
  });

  it("a multipart body is refused with 415 saying to send JSON, as the SDKs do", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/v1/images/generations",
      ...(await multipart({ prompt: "p" })),
    });
    expect(res.statusCode).toBe(415);
    expect(res.json().error.message).toMatch(/^send the request body as application\/json/);
    const list = await generate(["p"]);
    expect(list.statusCode).toBe(400);
    expect(list.json().error.message).toContain("must be a JSON object, got an array");
  });
});

describe("the openai package with API keys (KONTEXT_API_KEYS)", () => {
  let keyed: Harness;
  let url: string;
  beforeAll(async () => {
    keyed = await makeHarness({ config: { apiKeys: ["sk-kontext-test-0123"] } }); // fake engine: no job runs here
    await keyed.app.listen({ host: "127.0.0.1", port: 0 });
    url = `http://127.0.0.1:${(keyed.app.server.address() as AddressInfo).port}/v1`;
  });
  afterAll(async () => keyed?.close());

  it("the SDK's apiKey is the Bearer key: a wrong one is the SDK's AuthenticationError, the right one works", async () => {
    const wrong = new OpenAI({ baseURL: url, apiKey: "sk-wrong" });
    const err = await wrong.models.retrieve("flux-kontext-dev").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((err as Error).message).toContain("Authorization: Bearer");
    const right = new OpenAI({ baseURL: url, apiKey: "sk-kontext-test-0123" });
    expect((await right.models.retrieve("flux-kontext-dev")).id).toBe("flux-kontext-dev");
    const generated = await wrong.images.generate({ prompt: "p" }).catch((e: unknown) => e);
    expect(generated).toBeInstanceOf(OpenAI.AuthenticationError);
  });
});
