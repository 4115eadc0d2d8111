// LoRA adapters end to end (issue 15): KONTEXT_LORA_DIR listed by GET /api/ai/models/:id/loras
// with the engine's doctor report, a request naming an adapter runs it on the real tiny engine (on
// both queue backends) and the generation carries the report, and a name that is not listed or a
// file the doctor refuses is a 400 naming `loras`, nothing queued.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { forEachBackend, type QueueHarness } from "./backends.js";
import { type Harness, makeHarness, parseSse, pngDataUri, realEngine } from "./helpers.js";

const here = path.dirname(new URL(import.meta.url).pathname);

// A LoRA for the tiny model in BFL's naming (rank 4; without single_blocks.*.linear1, which BFL's
// naming fuses), and one that matches nothing.
const WRITE_LORAS = `
import sys, torch
from pathlib import Path
from safetensors.torch import save_file
d, W, M, R = Path(sys.argv[1]), 32, 128, 4
mods = [("img_in", 64, W), ("txt_in", 32, W), ("final_layer.linear", W, 64)]
for i in range(2):
    for s in ("img", "txt"):
        mods += [(f"double_blocks.{i}.{s}_attn.qkv", W, 3 * W), (f"double_blocks.{i}.{s}_attn.proj", W, W),
                 (f"double_blocks.{i}.{s}_mlp.0", W, M), (f"double_blocks.{i}.{s}_mlp.2", M, W),
                 (f"double_blocks.{i}.{s}_mod.lin", W, 6 * W)]
    mods += [(f"single_blocks.{i}.linear2", W + M, W), (f"single_blocks.{i}.modulation.lin", W, 3 * W)]
g = torch.Generator().manual_seed(1)
t = {}
for n, a, b in mods:
    t[f"{n}.lora_A.weight"] = torch.randn(R, a, generator=g) * 0.5
    t[f"{n}.lora_B.weight"] = torch.randn(b, R, generator=g) * 0.5
(d / "styles").mkdir(parents=True, exist_ok=True)
save_file(t, str(d / "styles" / "demo.safetensors"))
save_file({"foo.bar.lora_A.weight": torch.zeros(R, 8), "foo.bar.lora_B.weight": torch.zeros(8, R)},
          str(d / "unmatched.safetensors"))
`;

const sharedLoraDir = mkdtempSync(path.join(tmpdir(), "kontext-loras-"));
const sha256Of = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

beforeAll(() => {
  execFileSync(inject("python"), ["-c", WRITE_LORAS, sharedLoraDir], {
    cwd: path.join(here, "../../../engine"),
  });
}, 120_000);
afterAll(() => rmSync(sharedLoraDir, { recursive: true, force: true }));

describe("LoRA adapters (real engine, tiny model)", () => {
  let h: Harness;
  let image: string;
  const loraDir = sharedLoraDir;
  beforeAll(async () => {
    const engine = realEngine(inject("python"), inject("tinyModelDir"));
    h = await makeHarness({
      config: { loraDir },
      command: (device) => {
        const c = engine(device);
        return { ...c, args: [...c.args, "--lora-dir", loraDir] };
      },
    });
    image = await pngDataUri(64, 48);
  });
  afterAll(async () => h?.close());

  const edit = (extra: Record<string, unknown>) =>
    h.app.inject({
      method: "POST",
      url: "/api/ai/images/edit",
      payload: {
        input_image: image,
        prompt: "a red square",
        num_inference_steps: 4,
        seed: 3,
        output_format: "png",
        response_format: "b64_json",
        ...extra,
      },
    });

  it("lists each file with the doctor's report", async () => {
    const res = await h.app.inject({ url: "/api/ai/models/flux-kontext-dev/loras" });
    expect(res.statusCode, res.body).toBe(200);
    const data = res.json().data as Array<Record<string, unknown>>;
    const byName = new Map(data.map((e) => [e.name, e]));
    expect(byName.get("styles/demo")).toMatchObject({ ok: true, unmatched_prefixes: [] });
    expect(byName.get("styles/demo")?.matched).toBe(byName.get("styles/demo")?.total);
    expect(byName.get("unmatched")).toMatchObject({ ok: false, matched: 0 });
    expect((await h.app.inject({ url: "/api/ai/models/nope/loras" })).statusCode).toBe(404);
  }, 120_000);

  it("refuses a name that is not listed and a file the doctor refused, with 400 naming loras, nothing queued", async () => {
    const before = h.store.count("queued") + h.store.count("processing") + h.store.count("succeeded");
    const unknown = await edit({ loras: [{ name: "nope" }] });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.fields).toEqual(["loras"]);
    expect(unknown.json().error.detail).toContain('no LoRA named "nope"');
    const poor = await edit({ loras: [{ name: "unmatched", scale: 0.5 }] });
    expect(poor.statusCode).toBe(400);
    expect(poor.json().error.fields).toEqual(["loras"]);
    expect(poor.json().error.detail).toMatch(/unmatched prefixes: .*foo/);
    const after = h.store.count("queued") + h.store.count("processing") + h.store.count("succeeded");
    expect(after).toBe(before);
  }, 120_000);
});

// The doctor's report of each adapter a generation ran with, on both queue backends: in the sync
// response, the generation, its completed event and the history, as the engine reported it.
forEachBackend((backend, make) => {
  describe(`the LoRA report on the generation (${backend}, real engine)`, () => {
    let h: QueueHarness;
    let image: string;
    beforeAll(async () => {
      const engine = realEngine(inject("python"), inject("tinyModelDir"));
      h = await make({
        config: { loraDir: sharedLoraDir },
        command: (device) => {
          const c = engine(device);
          return { ...c, args: [...c.args, "--lora-dir", sharedLoraDir] };
        },
      });
      image = await pngDataUri(64, 48);
    }, 180_000);
    afterAll(async () => h?.close());

    const edit = (extra: Record<string, unknown>) =>
      h.app.inject({
        method: "POST",
        url: "/api/ai/images/edit",
        payload: { input_image: image, prompt: "a red square", num_inference_steps: 4, seed: 3, ...extra },
      });

    it("a run with the LoRA differs from one without, and reports the adapter wherever the generation is shown", async () => {
      const plain = await edit({ response_format: "b64_json", output_format: "png" });
      expect(plain.statusCode, plain.body).toBe(200);
      expect(plain.json()).not.toHaveProperty("lora_report");
      const styled = await edit({
        response_format: "b64_json",
        output_format: "png",
        loras: [{ name: "styles/demo", scale: 0.5 }],
      });
      expect(styled.statusCode, styled.body).toBe(200);
      expect(styled.json().images[0].b64_json).not.toBe(plain.json().images[0].b64_json);

      const report = styled.json().lora_report;
      expect(report).toEqual([
        {
          name: "styles/demo",
          scale: 0.5,
          sha256: sha256Of(path.join(sharedLoraDir, "styles/demo.safetensors")),
          size_bytes: statSync(path.join(sharedLoraDir, "styles/demo.safetensors")).size,
          format: "bfl",
          matched: 27, // every module of the file: 3 outer + 2 × (2 × 5 double + 2 single)
          total: 27,
          unmatched_prefixes: [],
          text_encoder_modules: 0,
        },
      ]);
      const id = styled.json().generation_id as string;
      const view = (await h.app.inject({ url: `/api/ai/queue/${id}` })).json();
      expect(view.lora_report).toEqual(report);
      expect(view.loras).toEqual([{ name: "styles/demo", scale: 0.5 }]); // the request, as sent
      const events = parseSse((await h.app.inject({ url: `/api/ai/queue/${id}/events` })).body);
      expect(events.at(-1)?.event).toBe("media_generation_completed");
      expect(events.at(-1)?.data).toMatchObject({ status: "succeeded", lora_report: report });
      const history = (await h.app.inject({ url: "/api/history" })).json().generations;
      const item = history.find((g: { generation_id: string }) => g.generation_id === id);
      expect(item.lora_report).toEqual(report);
      const other = history.find(
        (g: { generation_id: string }) => g.generation_id === plain.json().generation_id,
      );
      expect(other).not.toHaveProperty("lora_report");
    }, 400_000);
  });
});

describe("LoRA listing without KONTEXT_LORA_DIR", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await makeHarness();
  });
  afterAll(async () => h?.close());

  it("is an empty list, and a request naming a LoRA is refused", async () => {
    const res = await h.app.inject({ url: "/api/ai/models/flux-kontext-dev/loras" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ object: "list", data: [] });
    const edit = await h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      payload: { input_image: await pngDataUri(), prompt: "p", loras: [{ name: "a" }] },
    });
    expect(edit.statusCode).toBe(400);
    expect(edit.json().error.fields).toEqual(["loras"]);
  });
});
