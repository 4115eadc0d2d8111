// Issue 15's reference images (input_image_2..4) and mask_image on the real engine (tiny model,
// CPU, 4 steps, small inputs), and issue 16's two clauses about them: output_resolution input
// with a mask (nothing outside it changes, bit for bit) and with references (the first image is
// the one returned at its own size).
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Harness, makeHarness, maskDataUri, realEngine } from "./helpers.js";

const command = realEngine(inject("python"), inject("tinyModelDir"));

/** A small "photo" (gradients and a few shapes) as a PNG data URI: something for the model to see. */
async function scene(width: number, height: number, hue: number): Promise<string> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
      <stop offset="0" stop-color="hsl(${hue},70%,60%)"/><stop offset="1" stop-color="hsl(${(hue + 120) % 360},60%,30%)"/>
    </linearGradient></defs>
    <rect width="${width}" height="${height}" fill="url(#g)"/>
    <circle cx="${width * 0.3}" cy="${height * 0.6}" r="${height * 0.2}" fill="hsl(${(hue + 200) % 360},80%,50%)"/>
    <rect x="${width * 0.6}" y="${height * 0.2}" width="${width * 0.25}" height="${height * 0.4}" fill="#eee"/>
  </svg>`;
  const png = await sharp(Buffer.from(svg)).png().toBuffer();
  return `data:image/png;base64,${png.toString("base64")}`;
}

const raw = async (bytes: Buffer) => sharp(bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });

/** Mean absolute difference of two same-sized RGB buffers over the columns [x0, x1). */
function meanDiff(a: Buffer, b: Buffer, width: number, x0: number, x1: number): number {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < a.length; i += 3) {
    const x = (i / 3) % width;
    if (x < x0 || x >= x1) continue;
    for (let c = 0; c < 3; c++) sum += Math.abs((a[i + c] as number) - (b[i + c] as number));
    n += 3;
  }
  return sum / n;
}

describe("reference images and masks (real engine, tiny model)", () => {
  let h: Harness;
  let input: string;
  let second: string;
  let third: string;
  beforeAll(async () => {
    h = await makeHarness({ command });
    [input, second, third] = await Promise.all([scene(64, 48, 10), scene(56, 56, 140), scene(72, 40, 260)]);
  }, 180_000);
  afterAll(async () => h?.close());

  /** The result's bytes (png) and the response. */
  const edit = async (extra: Record<string, unknown>) => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/ai/images/edit",
      payload: {
        input_image: input,
        prompt: "put the hat from the second image on the circle",
        num_inference_steps: 4,
        seed: 11,
        output_format: "png",
        response_format: "b64_json",
        ...extra,
      },
    });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    return { png: Buffer.from(body.images[0].b64_json as string, "base64"), body };
  };

  it("a second reference image changes the output, and the same request repeats it exactly", async () => {
    const plain = await edit({});
    const withRef = await edit({ input_image_2: second });
    const again = await edit({ input_image_2: second });
    expect(Buffer.compare(withRef.png, plain.png)).not.toBe(0);
    expect(Buffer.compare(again.png, withRef.png)).toBe(0);
    expect([withRef.body.width, withRef.body.height]).toEqual([plain.body.width, plain.body.height]); // input_image sets the size
  }, 300_000);

  it("the order of the references changes the output", async () => {
    const bc = await edit({ input_image_2: second, input_image_3: third });
    const cb = await edit({ input_image_2: third, input_image_3: second });
    expect(Buffer.compare(bc.png, cb.png)).not.toBe(0);
    // reference_method index places them differently again
    const indexed = await edit({ input_image_2: second, input_image_3: third, reference_method: "index" });
    expect(Buffer.compare(indexed.png, bc.png)).not.toBe(0);
  }, 300_000);

  it("with a painted mask, the kept half no longer depends on the seed; the changed half does", async () => {
    // Right half white (change), left half black (keep). Outside the mask the engine puts the
    // input's own latents back after every step, so two seeds agree there; unmasked they differ
    // everywhere. (The tiny model's VAE has random weights: the kept pixels are its rendering of
    // the input, not the input itself; output_resolution input, below, gives the original's.)
    const mask = await maskDataUri(64, 48);
    const [a, b, ma, mb] = await Promise.all([
      edit({ seed: 1 }),
      edit({ seed: 2 }),
      edit({ seed: 1, mask_image: mask }),
      edit({ seed: 2, mask_image: mask }),
    ]);
    const [ra, rb, rma, rmb] = await Promise.all([a, b, ma, mb].map((x) => raw(x.png)));
    const width = ra?.info.width as number;
    const margin = Math.round(width / 8); // the VAE's reach across the mask's edge
    const keep = [0, width / 2 - margin] as const;
    const change = [width / 2 + margin, width] as const;
    const unmaskedKeep = meanDiff(ra?.data as Buffer, rb?.data as Buffer, width, ...keep);
    const maskedKeep = meanDiff(rma?.data as Buffer, rmb?.data as Buffer, width, ...keep);
    const maskedChange = meanDiff(rma?.data as Buffer, rmb?.data as Buffer, width, ...change);
    expect(unmaskedKeep).toBeGreaterThan(10);
    expect(maskedKeep).toBeLessThan(1);
    expect(maskedChange).toBeGreaterThan(10);
    expect(ma.body).not.toHaveProperty("warnings");
  }, 400_000);

  it("a mask of another size is resized to the input's, and the response says so", async () => {
    const { body } = await edit({ mask_image: await maskDataUri(32, 24) });
    expect(body.warnings).toEqual([
      "mask_image is 32×24 and input_image 64×48: the mask was resized to the input image's size",
    ]);
    const view = (await h.app.inject({ url: `/api/ai/queue/${body.generation_id}` })).json();
    expect(view.warnings).toEqual(body.warnings);
  }, 120_000);

  it("an alpha-only mask counts transparent as change, as a white-on-black one counts white", async () => {
    const right = (x: number) => x >= 32;
    const white = await edit({ mask_image: await maskDataUri(64, 48, right) });
    const transparent = await edit({ mask_image: await maskDataUri(64, 48, right, true) });
    expect(Buffer.compare(transparent.png, white.png)).toBe(0);
  }, 200_000);

  it("output_resolution input with a mask: every pixel outside the mask is the original's, bit for bit", async () => {
    // A larger input so the result is upscaled; change only a box in the lower right.
    const width = 320;
    const height = 240;
    const big = await scene(width, height, 40);
    const box = (x: number, y: number) => x >= 200 && x < 300 && y >= 120 && y < 220;
    const { png, body } = await edit({
      input_image: big,
      mask_image: await maskDataUri(width, height, box),
      output_resolution: "input",
    });
    expect([body.width, body.height]).toEqual([width, height]);
    const out = await raw(png);
    const original = await raw(Buffer.from(big.split(",")[1] as string, "base64"));
    let outside = 0;
    let differing = 0;
    let changedInside = 0;
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const i = (y * width + x) * 3;
        const same = [0, 1, 2].every((c) => out.data[i + c] === original.data[i + c]);
        if (box(x, y)) changedInside += same ? 0 : 1;
        else {
          outside++;
          differing += same ? 0 : 1;
        }
      }
    expect(outside).toBeGreaterThan(0);
    expect(differing, "pixels outside the mask that differ from the original").toBe(0);
    expect(changedInside, "the edit changed something inside the mask").toBeGreaterThan(0);
    expect(body.changed_fraction).toBeLessThanOrEqual((100 * 100) / (width * height) + 1e-6);
    expect(body.whole_frame).toBe(false); // a given mask always bounds the change
  }, 200_000);

  it("output_resolution input with references: input_image comes back at its own size", async () => {
    const width = 200;
    const height = 150;
    const { png, body } = await edit({
      input_image: await scene(width, height, 300),
      input_image_2: second,
      input_image_3: third,
      output_resolution: "input",
    });
    expect([body.width, body.height]).toEqual([width, height]);
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height]).toEqual([width, height]);
    expect(typeof body.changed_fraction).toBe("number");
  }, 200_000);
});
