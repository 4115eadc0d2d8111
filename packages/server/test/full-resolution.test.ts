// output_resolution input (issue 16): the edit at the input's own size on the real engine (tiny
// model, CPU), the change mask and the input's alpha back; and the three refusals.
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Generation } from "../src/jobs/types.js";
import { deliveryBody } from "../src/webhooks/outbox.js";
import { type Harness, makeHarness, realEngine } from "./helpers.js";

const command = realEngine(inject("python"), inject("tinyModelDir"));

/** A 12 MP "photo": a gradient sky, a ground and a few objects, as a JPEG (compresses well). */
async function photo12mp(): Promise<Buffer> {
  const width = 4000;
  const height = 3000;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <defs><linearGradient id="s" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#6fa8dc"/><stop offset="1" stop-color="#e6f0fa"/></linearGradient></defs>
    <rect width="${width}" height="${height * 0.6}" fill="url(#s)"/>
    <rect y="${height * 0.6}" width="${width}" height="${height * 0.4}" fill="#7a6a4f"/>
    <circle cx="1200" cy="2100" r="300" fill="#c0392b"/>
    <rect x="2600" y="1700" width="600" height="700" fill="#2e86c1"/>
  </svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality: 85 }).toBuffer();
}

const dataUri = (bytes: Buffer, mime: string) => `data:${mime};base64,${bytes.toString("base64")}`;

async function fetchResult(h: Harness, url: string): Promise<Buffer> {
  const res = await h.app.inject({ url: new URL(url).pathname });
  expect(res.statusCode, url).toBe(200);
  return res.rawPayload;
}

describe("output_resolution input (real engine, tiny model)", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await makeHarness({ command });
  }, 180_000);
  afterAll(async () => h?.close());

  it("a 12 MP JPEG comes back at 4000×3000 with its change mask", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/ai/images/edit",
      payload: {
        input_image: dataUri(await photo12mp(), "image/jpeg"),
        prompt: "remove the red ball",
        num_inference_steps: 4,
        output_resolution: "input",
        output_format: "png",
      },
    });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect([body.width, body.height]).toEqual([4000, 3000]);
    const result = await sharp(await fetchResult(h, body.images[0].url)).metadata();
    expect([result.width, result.height]).toEqual([4000, 3000]);
    // The tiny model's output is noise: nearly all of the frame changes, so the result is the plain
    // upscaled output and says so.
    expect(body.changed_fraction).toBeGreaterThan(0.6);
    expect(body.changed_fraction).toBeLessThanOrEqual(1);
    expect(body.whole_frame).toBe(true);
    const mask = await sharp(await fetchResult(h, body.change_mask_url)).metadata();
    expect([mask.format, mask.width, mask.height, mask.channels]).toEqual(["png", 4000, 3000, 1]);

    // The queue's view, the history and the completed event carry the same.
    const id = body.generation_id as string;
    const view = (await h.app.inject({ url: `/api/ai/queue/${id}` })).json();
    expect(view).toMatchObject({
      change_mask_url: body.change_mask_url,
      changed_fraction: body.changed_fraction,
      whole_frame: true,
      width: 4000,
      height: 3000,
    });
    const completed = h.store.eventsOf(id).find((e) => e.event === "media_generation_completed");
    expect(completed?.data).toMatchObject({ changed_fraction: body.changed_fraction, whole_frame: true });
    expect(String(completed?.data.change_mask_url)).toMatch(/^\/results\/.+-mask\.png$/);

    // Deleting the generation removes its mask with its result.
    expect((await h.app.inject({ method: "DELETE", url: `/api/history/${id}` })).statusCode).toBe(200);
    for (const url of [body.images[0].url, body.change_mask_url])
      expect((await h.app.inject({ url: new URL(url).pathname })).statusCode, url).toBe(404);
  }, 240_000);

  for (const format of ["png", "webp"] as const) {
    it(`an input's alpha comes back on ${format}`, async () => {
      const width = 96;
      const height = 64;
      const alpha = Buffer.alloc(width * height);
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) alpha[y * width + x] = x < width / 2 ? 255 : (y * 4) % 256;
      const rgba = await sharp({
        create: { width, height, channels: 3, background: { r: 40, g: 160, b: 90 } },
      })
        .joinChannel(alpha, { raw: { width, height, channels: 1 } })
        .png()
        .toBuffer();
      const res = await h.app.inject({
        method: "POST",
        url: "/api/ai/images/edit",
        payload: {
          input_image: dataUri(rgba, "image/png"),
          prompt: "p",
          num_inference_steps: 4,
          output_resolution: "input",
          output_format: format,
        },
      });
      expect(res.statusCode, res.body).toBe(200);
      const out = await fetchResult(h, res.json().images[0].url);
      const { data, info } = await sharp(out).extractChannel(3).raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height]).toEqual([width, height]);
      expect(Buffer.compare(data, alpha)).toBe(0); // webp keeps alpha losslessly
    }, 120_000);
  }
});

describe("output_resolution refusals", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await makeHarness();
  });
  afterAll(async () => h?.close());

  const post = async (payload: Record<string, unknown>) =>
    h.app.inject({ method: "POST", url: "/api/ai/queue", payload: { prompt: "p", ...payload } });
  const small = async () =>
    dataUri(
      await sharp({ create: { width: 40, height: 30, channels: 3, background: "#888" } })
        .png()
        .toBuffer(),
      "image/png",
    );

  it("preserve_unedited without output_resolution input is refused naming it", async () => {
    for (const extra of [{}, { output_resolution: "bucket" }]) {
      const res = await post({ input_image: await small(), preserve_unedited: true, ...extra });
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().error.fields).toEqual(["preserve_unedited"]);
      expect(res.json().error.detail).toMatch(/output_resolution input/);
    }
  });

  it("output_resolution input with another aspect_ratio is refused naming aspect_ratio", async () => {
    const res = await post({ input_image: await small(), output_resolution: "input", aspect_ratio: "1:1" });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().error.fields).toEqual(["aspect_ratio"]);
    expect(res.json().error.detail).toMatch(/match_input_image/);
  });

  it("output_resolution input with an input beyond 8192 px a side is refused naming the limit", async () => {
    const wide = await sharp({ create: { width: 8200, height: 16, channels: 3, background: "#888" } })
      .png()
      .toBuffer();
    const res = await post({ input_image: dataUri(wide, "image/png"), output_resolution: "input" });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().error.fields).toEqual(["output_resolution"]);
    expect(res.json().error.detail).toMatch(/8192 px/);
    expect(res.json().error.detail).toMatch(/8200×16/);
    // the same input at bucket resolution is fine (shrunk for the engine as always)
    expect((await post({ input_image: dataUri(wide, "image/png") })).statusCode).toBe(200);
  });
});

describe("the change mask in webhooks", () => {
  it("a completed event's change_mask_url goes out absolute, beside changed_fraction and whole_frame", () => {
    const g = { baseUrl: "https://kontext.example" } as Generation;
    const data = {
      url: "/results/g1-x.png",
      change_mask_url: "/results/g1-x-mask.png",
      changed_fraction: 0.04,
      whole_frame: false,
    };
    const body = JSON.parse(
      deliveryBody(g, { id: 1, generationId: "g1", event: "media_generation_completed", data }, 0),
    );
    expect(body.data).toEqual({
      url: "https://kontext.example/results/g1-x.png",
      change_mask_url: "https://kontext.example/results/g1-x-mask.png",
      changed_fraction: 0.04,
      whole_frame: false,
    });
  });
});
