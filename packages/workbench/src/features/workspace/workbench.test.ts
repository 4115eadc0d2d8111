// The page's controller against a fake server: submit → follow → refresh, the step just run in
// the chain, the workspace saved (never image bytes) and restored with its run followed again.

import { readFileSync } from "node:fs";
import path from "node:path";
import type { Model } from "@kontext/client";
import { describe, expect, it } from "vitest";
import { memoryStorage } from "../../app/store.js";
import { generateSchema, newFieldsSchema } from "../form/fixtures.js";
import { Form, LOCAL_KEY } from "../form/form.js";
import type { ImageDeps } from "../form/image.js";
import { Gallery } from "../gallery/gallery.js";
import { Loras } from "../loras/loras.js";
import { GridSurface } from "../mask/fakes.js";
import { Mask } from "../mask/mask.js";
import { Queue } from "../queue/queue.js";
import { progressEvent, startedEvent, succeededEvent } from "../run/fixtures.js";
import { Runs } from "../run/runs.js";
import { fakeApi, fakeTimers, generation, historyItem } from "../session/fakes.js";
import { Session } from "../session/session.js";
import { Sweep } from "../sweep/sweep.js";
import { memoryBlobs } from "./blobs.js";
import { WORKSPACE_KEY } from "./persist.js";
import { Workbench } from "./workbench.js";

const schema = JSON.parse(
  readFileSync(path.resolve(import.meta.dirname, "../../../../server/openapi.json"), "utf8"),
).components.schemas.FluxKontextDevRequest;
const model = {
  id: "flux-kontext-dev",
  display_name: "FLUX.1 Kontext [dev]",
  demo: true,
  json_request_schema: schema,
} as unknown as Model;
const images: ImageDeps = {
  measure: async () => ({ width: 4000, height: 3000 }),
  measureUrl: async () => null,
  objectUrl: (() => {
    let n = 0;
    return () => `blob:x${++n}`; // each a new URL, as in a browser
  })(),
  revoke: () => undefined,
  dataUri: async (b) => `data:${b.type};base64,${Buffer.from(await b.arrayBuffer()).toString("base64")}`,
  reencode: async (b) => b,
};
const photo = () =>
  Object.assign(new Blob([new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 9, 9])], { type: "image/jpeg" }), {
    name: "IMG_7.jpg",
  }) as File;
const flush = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

function setup(
  storage = memoryStorage(),
  blobs = memoryBlobs(),
  json_request_schema: unknown = schema,
  json_generate_request_schema?: unknown,
) {
  const server = fakeApi();
  server.api.model = async () => ({ ...model, json_request_schema, json_generate_request_schema }) as Model;
  const timers = fakeTimers();
  const runs = new Runs({ api: server.api, timers });
  const wb = new Workbench(
    {
      session: new Session({ api: server.api, storage, timers, reload: () => undefined }),
      form: new Form({ images, blobs, fetchBlob: (url) => server.api.blob(url) }),
      runs,
      sweep: new Sweep({ submitOne: (b) => runs.submitOne(b), cancel: (ids) => runs.cancel(ids) }),
      gallery: new Gallery(server.api),
      queue: new Queue(server.api, timers),
      loras: new Loras(server.api),
      mask: new Mask({ surface: (size) => new GridSurface(size), blobs, timers, dataUri: images.dataUri }),
    },
    { api: server.api, storage, timers },
  );
  return { server, timers, wb, storage, blobs };
}

describe("the workbench controller", () => {
  it("checks, submits and follows a run; when it finishes the history is refreshed and the step shows in the chain", async () => {
    const { server, wb, timers } = setup();
    await wb.init();
    const { form, runs } = wb.parts;
    await wb.submit(); // nothing chosen: refused in the browser, nothing sent
    expect(server.submitted).toEqual([]);
    expect(Object.keys(form.get().errors.fields)).toEqual(["input_image", "prompt"]);

    await wb.pickFile(photo());
    form.setValue("prompt", "make the sky purple");
    form.setValue("num_inference_steps", 4);
    await wb.submit();
    expect(server.submitted[0]).toMatchObject({ prompt: "make the sky purple", num_inference_steps: 4 });
    expect(server.submitted[0]?.input_image).toMatch(/^data:image\/jpeg;base64,/);
    expect(form.get().errors.fields).toEqual({});
    // After the run the input is the server's copy (what a reload will use).
    expect(form.get().image?.ref).toEqual({
      kind: "server",
      url: "/api/history/g1/input",
      name: "IMG_7.jpg",
      generationId: "g1",
      role: "input",
    });

    server.push("g1", startedEvent("g1"));
    server.push("g1", progressEvent(2, undefined, "g1"));
    expect(runs.get().tracked.g1?.step).toBe(2);
    server.setItems([historyItem("g1", null, { prompt: "make the sky purple" })]);
    const before = server.calls.filter((c) => c.startsWith("history")).length;
    server.push("g1", succeededEvent("g1"));
    await flush();
    expect(server.calls.filter((c) => c.startsWith("history")).length).toBe(before + 1);
    expect(wb.get().chain).toEqual({ baseId: null, tipId: "g1" });
    timers.advance(300);
    wb.close();
  });

  it("saves the workspace with the image by reference, never its bytes", async () => {
    const { wb, storage, timers, blobs } = setup();
    await wb.init();
    await wb.pickFile(photo());
    wb.parts.form.setValue("prompt", "keep me");
    timers.advance(300);
    const saved = storage.get(WORKSPACE_KEY) as string;
    expect(JSON.parse(saved)).toMatchObject({
      v: 1,
      values: { prompt: "keep me" },
      image: { kind: "local", key: LOCAL_KEY, name: "IMG_7.jpg" },
    });
    expect(saved).not.toContain("base64");
    expect(blobs.map.get(LOCAL_KEY)?.size).toBe(6); // the bytes are in IndexedDB
    wb.close();
  });

  it("after a reload restores prompt, parameters, image and chain, follows the running generation again and cancels it", async () => {
    const storage = memoryStorage();
    storage.set(
      WORKSPACE_KEY,
      JSON.stringify({
        v: 1,
        values: { prompt: "a long one", num_inference_steps: 50 },
        image: {
          kind: "server",
          url: "/api/history/g4/input",
          name: "IMG_7.jpg",
          generationId: "g4",
          role: "input",
        },
        chain: { baseId: null, tipId: "g3" },
        run: { ids: ["g4"], prompt: "a long one" },
        sweep: null,
        compared: ["result:g3"],
      }),
    );
    const { server, wb } = setup(storage);
    server.generations.set("g4", generation("g4", { status: "processing", step: 20, total_steps: 50 }));
    await wb.init();
    const { form, runs } = wb.parts;
    expect([form.get().values.prompt, form.get().values.num_inference_steps]).toEqual(["a long one", 50]);
    expect(server.calls).toContain("blob /api/history/g4/input");
    expect(form.get().image?.bytes).toBe(4);
    expect(wb.get().chain).toEqual({ baseId: null, tipId: "g3" });
    expect(wb.get().compared).toEqual(["result:g3"]);
    expect(runs.runActive).toBe(true);
    expect(server.calls).toContain("follow g4");
    server.push("g4", progressEvent(21, undefined, "g4"));
    expect(runs.get().tracked.g4?.step).toBe(21);
    await wb.cancelRun();
    expect(server.calls).toContain("cancel g4");
    wb.close();
  });

  it("lists the server's LoRAs, sends the chosen ones with the new fields, and keeps them across a reload", async () => {
    const storage = memoryStorage();
    const first = setup(storage, memoryBlobs(), newFieldsSchema());
    first.server.setLoras({
      object: "list",
      data: [{ name: "ink", format: "kohya", matched: 342, total: 342, ok: true }],
    });
    await first.wb.init();
    await flush();
    expect(first.server.calls).toContain("loras");
    expect(first.wb.parts.loras.file("ink")?.format).toBe("kohya");
    const { form } = first.wb.parts;
    await first.wb.pickFile(photo());
    form.setValue("prompt", "ink style");
    form.setValue("loras", [{ name: "ink", scale: 0.75 }]);
    form.setValue("true_cfg_scale", 2);
    form.setValue("negative_prompt", "blurry");
    form.setValue("output_resolution", "input");
    await first.wb.submit();
    expect(first.server.submitted[0]).toMatchObject({
      prompt: "ink style",
      loras: [{ name: "ink", scale: 0.75 }],
      true_cfg_scale: 2,
      negative_prompt: "blurry",
      output_resolution: "input",
    });
    expect(first.server.submitted[0]).not.toHaveProperty("preserve_unedited"); // the server's default
    form.setValue("true_cfg_scale", 2.5);
    first.wb.flush(); // the page goes away before the save's timer
    first.wb.close();

    const again = setup(storage, memoryBlobs(), newFieldsSchema());
    await again.wb.init();
    expect(again.wb.parts.form.get().values).toMatchObject({
      loras: [{ name: "ink", scale: 0.75 }],
      true_cfg_scale: 2.5,
      negative_prompt: "blurry",
      output_resolution: "input",
    });
    again.wb.close();
  });

  it("sends a painted mask and a second reference with the run, and keeps both across a reload", async () => {
    const storage = memoryStorage();
    const blobs = memoryBlobs();
    const first = setup(storage, blobs, newFieldsSchema());
    await first.wb.init();
    const { form, mask } = first.wb.parts;
    await first.wb.pickFile(photo());
    await flush();
    expect(mask.get().size).toEqual({ width: 2048, height: 1536 }); // the 4000×3000 input, painted smaller
    form.setValue("prompt", "put this hat on him");
    await first.wb.submit(); // nothing painted: no mask_image
    expect(first.server.submitted[0]).not.toHaveProperty("mask_image");
    mask.stroke([{ x: 300, y: 300 }]);
    const hat = Object.assign(
      new Blob([new Uint8Array([0x89, 0x50, 0x4e, 0x47, 7])], { type: "image/png" }),
      {
        name: "hat.png",
      },
    );
    await form.pickRefFile("input_image_2", hat);
    first.server.generations.set("g1", generation("g1", { status: "succeeded" }));
    first.server.push("g1", succeededEvent("g1"));
    await flush();
    await first.wb.submit();
    const sent = first.server.submitted[1] as unknown as Record<string, string>;
    expect(JSON.parse(Buffer.from(sent.mask_image?.split(",")[1] ?? "", "base64").toString())).toMatchObject({
      width: 4000,
      height: 3000,
    });
    expect(sent.input_image_2).toBe(
      `data:image/png;base64,${Buffer.from([0x89, 0x50, 0x4e, 0x47, 7]).toString("base64")}`,
    );
    first.wb.flush();
    await flush();
    first.wb.close();

    const again = setup(storage, blobs, newFieldsSchema());
    await again.wb.init();
    expect(again.wb.parts.mask.get()).toMatchObject({ painted: true, input: { width: 4000, height: 3000 } });
    expect(again.wb.parts.form.get().refs.input_image_2?.ref.name).toBe("hat.png");
    // another picture as the input: the mask was for the last one
    await again.wb.pickFile(photo());
    await flush();
    expect(again.wb.parts.mask.get().painted).toBe(false);
    again.wb.close();
  });

  it("generates from text alone, keeps each mode's aspect ratio, and chains the result into an edit", async () => {
    const storage = memoryStorage();
    const first = setup(storage, memoryBlobs(), newFieldsSchema(), generateSchema());
    await first.wb.init();
    const { form } = first.wb.parts;
    expect(form.get()).toMatchObject({ mode: "edit", canGenerate: true });
    await first.wb.pickFile(photo());
    form.setValue("prompt", "a red fox in the snow");
    form.setValue("num_inference_steps", 4);
    form.setMode("generate");
    expect(form.has("input_image")).toBe(false);
    expect(form.get().values).toMatchObject({
      prompt: "a red fox in the snow",
      num_inference_steps: 4,
      aspect_ratio: "1:1",
    });
    form.setValue("aspect_ratio", "16:9");
    await first.wb.submit();
    const sent = first.server.submitted[0] as unknown as Record<string, unknown>;
    expect(sent).toMatchObject({ prompt: "a red fox in the snow", aspect_ratio: "16:9" });
    expect(sent).not.toHaveProperty("input_image"); // the queue takes it as text-to-image
    expect(first.wb.hasInput("g1")).toBe(false); // no before/after for it
    expect(form.get().image?.ref.kind).toBe("local"); // the photo stays for the way back

    form.setMode("edit");
    expect(form.get().values.aspect_ratio).toBe("match_input_image");
    form.setMode("generate");
    expect(form.get().values.aspect_ratio).toBe("16:9");
    first.wb.flush();
    first.wb.close();

    const again = setup(storage, memoryBlobs(), newFieldsSchema(), generateSchema());
    again.server.setItems([
      historyItem("g1", null, { prompt: "a red fox in the snow", input_url: null } as never),
    ]);
    await again.wb.init();
    expect(again.wb.parts.form.get().mode).toBe("generate"); // kept across the reload
    await again.wb.continueFrom("g1");
    expect(again.wb.parts.form.get().mode).toBe("edit");
    expect(again.wb.parts.form.get().image?.ref).toMatchObject({
      kind: "server",
      url: "/results/g1.webp",
      role: "result",
    });
    expect(again.wb.get().chain).toEqual({ baseId: "g1", tipId: "g1" });
    again.wb.close();
  });

  it("reuses a history item with the reference images it was run with", async () => {
    const { server, wb } = setup(memoryStorage(), memoryBlobs(), newFieldsSchema());
    const refs = [{ field: "input_image_2", url: "/api/history/r/inputs/input_image_2" }];
    server.setItems([historyItem("r", null, { prompt: "hat on", references: refs } as never)]);
    await wb.init();
    await wb.parts.form.pickRefUrl("input_image_3", "https://example.com/old.png");
    const r = wb.parts.gallery.get().known.get("r");
    if (!r) throw new Error("r is not known");
    await wb.reuse(r);
    expect(server.calls).toContain("blob /api/history/r/inputs/input_image_2");
    expect(Object.entries(wb.parts.form.get().refs).map(([k, v]) => [k, v.ref.kind])).toEqual([
      ["input_image_2", "server"],
    ]);
    wb.close();
  });

  it("has no Generate mode when the model serves no text-to-image schema", async () => {
    const { wb } = setup();
    await wb.init();
    wb.parts.form.setMode("generate");
    expect(wb.parts.form.get()).toMatchObject({ mode: "edit", canGenerate: false });
    wb.close();
  });

  it("does not ask for a LoRA listing when the model takes no adapters", async () => {
    const { loras: _none, ...properties } = schema.properties;
    const { server, wb } = setup(memoryStorage(), memoryBlobs(), { ...schema, properties });
    await wb.init();
    expect(server.calls).not.toContain("loras");
    wb.close();
  });

  it("continues from a result and reuses a history item with its parent's result as the input", async () => {
    const { server, wb } = setup();
    server.setItems([
      historyItem("b", "a", { prompt: "blue hat", seed: 9, guidance: 4 }),
      historyItem("a", null, { prompt: "hat" }),
    ]);
    await wb.init();
    await wb.continueFrom("a");
    expect(wb.get().chain).toEqual({ baseId: "a", tipId: "a" });
    expect(wb.parts.form.get().image?.ref).toMatchObject({
      kind: "server",
      url: "/results/a.webp",
      role: "result",
    });
    const b = wb.parts.gallery.get().known.get("b");
    if (!b) throw new Error("b is not known");
    await wb.reuse(b);
    expect(wb.parts.form.get().values).toMatchObject({ prompt: "blue hat", seed: 9, guidance: 4 });
    expect(wb.get().chain).toEqual({ baseId: "a", tipId: "a" });
    wb.close();
  });

  it("deletes a generation and drops it from the comparison and the viewer", async () => {
    const { server, wb } = setup();
    server.setItems([historyItem("a"), historyItem("b")]);
    await wb.init();
    wb.toggleCompare("result:a");
    wb.toggleCompare("result:b");
    wb.viewCompared();
    expect(wb.get().viewer?.items.map((i) => i.key)).toEqual(["result:a", "result:b"]);
    await wb.remove("a");
    expect(wb.get().compared).toEqual(["result:b"]);
    expect(wb.get().viewer?.items.map((i) => i.key)).toEqual(["result:b"]);
    expect(server.calls).toContain("remove a");
    wb.close();
  });
});
