// Issue 15's request fields on the real engine (tiny model, CPU, 4 steps, a small input): a
// negative prompt with true_cfg_scale 2 changes the image, and the same seed gives the same image.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Harness, makeHarness, pngDataUri, realEngine } from "./helpers.js";

const command = realEngine(inject("python"), inject("tinyModelDir"));

describe("e2e: negative_prompt and true_cfg_scale (real engine)", () => {
  let h: Harness;
  let image: string;
  beforeAll(async () => {
    h = await makeHarness({ command });
    image = await pngDataUri(64, 48);
  });
  afterAll(async () => h?.close());

  const edit = async (extra: Record<string, unknown>) => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/ai/images/edit",
      payload: {
        input_image: image,
        prompt: "a red square",
        num_inference_steps: 4,
        seed: 7,
        output_format: "png",
        response_format: "b64_json",
        ...extra,
      },
    });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().images[0].b64_json as string;
  };

  it("a negative prompt with true_cfg_scale 2 changes the image; the same seed repeats it", async () => {
    const plain = await edit({});
    const cfg = await edit({ negative_prompt: "blurry", true_cfg_scale: 2 });
    const again = await edit({ negative_prompt: "blurry", true_cfg_scale: 2 });
    expect(cfg).not.toBe(plain);
    expect(again).toBe(cfg);
  }, 400_000);
});
