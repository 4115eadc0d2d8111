import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { memoryBlobs } from "../workspace/blobs.js";
import { Form, LOCAL_KEY } from "./form.js";
import type { ImageDeps } from "./image.js";

/** The model's schema as the server serves it, with its API-only fields marked. */
function schema(): Record<string, unknown> {
  const openapi = JSON.parse(
    readFileSync(path.resolve(import.meta.dirname, "../../../../server/openapi.json"), "utf8"),
  );
  const s = structuredClone(openapi.components.schemas.FluxKontextDevRequest) as {
    properties: Record<string, Record<string, unknown>>;
  };
  for (const name of ["response_format", "stream", "webhook", "webhook_events_filter"])
    if (s.properties[name]) s.properties[name]["x-kontext-form"] = false;
  return s;
}

function images(): ImageDeps & { reencoded: number } {
  const deps = {
    reencoded: 0,
    measure: async () => ({ width: 4000, height: 3000 }),
    measureUrl: async () => ({ width: 640, height: 480 }),
    objectUrl: () => "blob:preview",
    revoke: () => undefined,
    dataUri: async (b: Blob) =>
      `data:${b.type};base64,${Buffer.from(await b.arrayBuffer()).toString("base64")}`,
    reencode: async () => {
      deps.reencoded++;
      return new Blob([new Uint8Array([0xff, 0xd8, 0xff, 1])], { type: "image/jpeg" });
    },
  };
  return deps;
}

const jpeg = (size = 8, name = "IMG_1.jpg") =>
  Object.assign(
    new Blob([new Uint8Array([0xff, 0xd8, 0xff, 0xe0]), new Uint8Array(size)], { type: "image/jpeg" }),
    { name },
  );

function setup() {
  const blobs = memoryBlobs();
  const img = images();
  const fetched: string[] = [];
  const form = new Form({
    images: img,
    blobs,
    fetchBlob: async (url) => {
      fetched.push(url);
      return new Blob([new Uint8Array([0x89, 0x50, 0x4e, 0x47])], { type: "image/png" });
    },
  });
  form.setSchema("flux-kontext-dev", schema());
  return { form, blobs, img, fetched };
}

describe("the form controller", () => {
  it("makes the fields from the schema, leaving out what only API clients need", () => {
    const { form } = setup();
    const names = form.get().fields.map((f) => f.name);
    expect(names).toContain("guidance");
    for (const gone of ["model", "response_format", "stream", "webhook", "webhook_events_filter"])
      expect(names).not.toContain(gone);
    expect(form.get().values.num_inference_steps).toBe(28);
  });

  it("checks in the browser with the schema: each invalid field named in the server's words", () => {
    const { form } = setup();
    form.setValue("prompt", "   ");
    form.setValue("output_quality", 150);
    form.setValue("guidance", Number.NaN);
    expect(form.check()).toBe(false);
    expect(form.get().errors.fields).toEqual({
      input_image: "required",
      prompt: 'must be a string with at least one non-space character of at most 10000 characters, got "   "',
      output_quality: "must be an integer from 0 to 100, got 150",
      guidance: "must be a number from 0 to 10, got not a number",
    });
    expect(form.get().attempt).toBe(1);
    form.setValue("output_quality", 80); // fixing a field clears its error
    expect(form.get().errors.fields.output_quality).toBeUndefined();
  });

  it("refuses HEIC and AVIF when picked, and a valid pick ends the error", async () => {
    const { form } = setup();
    const heic = Object.assign(
      new Blob([new Uint8Array([0, 0, 0, 24]), new TextEncoder().encode("ftypheic")], { type: "" }),
      { name: "IMG_0001.HEIC" },
    );
    expect(await form.pickFile(heic)).toBe(false);
    expect(form.get().errors.fields.input_image).toMatch(
      /IMG_0001.HEIC is HEIC, which the server cannot read/,
    );
    const avif = Object.assign(
      new Blob([new Uint8Array([0, 0, 0, 24]), new TextEncoder().encode("ftypavif")], { type: "image/avif" }),
      { name: "a.avif" },
    );
    expect(await form.pickFile(avif)).toBe(false);
    expect(form.get().errors.fields.input_image).toMatch(/AVIF/);
    expect(await form.pickFile(jpeg())).toBe(true);
    expect(form.get().errors.fields.input_image).toBeUndefined();
    expect(form.get().image).toMatchObject({
      previewUrl: "blob:preview",
      width: 4000,
      height: 3000,
      type: "image/jpeg",
    });
  });

  it("keeps a picked photo as bytes (IndexedDB), never as a data URI in its state, and sends it as one", async () => {
    const { form, blobs, img } = setup();
    await form.pickFile(jpeg());
    expect(blobs.map.get(LOCAL_KEY)?.size).toBe(12);
    expect(JSON.stringify({ image: form.get().image, values: form.get().values })).not.toContain("base64");
    form.setValue("prompt", "a hat");
    expect(form.check()).toBe(true);
    const body = await form.body();
    expect(body.input_image).toBe(
      `data:image/jpeg;base64,${Buffer.from([0xff, 0xd8, 0xff, 0xe0, ...new Uint8Array(8)]).toString("base64")}`,
    );
    expect(img.reencoded).toBe(0);
    expect(body).not.toHaveProperty("response_format");
    expect(form.codeImage("http://h")).toEqual({ kind: "file", name: "IMG_1.jpg", type: "image/jpeg" });
  });

  it("re-encodes an image too large to send as it is", async () => {
    const { form, img } = setup();
    await form.pickFile(jpeg(17 * 1024 * 1024));
    await form.body();
    expect(img.reencoded).toBe(1);
  });

  it("takes an image from the server (a result, an input) and after a run refers to the input there", async () => {
    const { form, fetched } = setup();
    await form.takeServerImage({
      kind: "server",
      url: "/api/history/g1/input",
      name: "input of g1",
      generationId: "g1",
      role: "input",
    });
    expect(fetched).toEqual(["/api/history/g1/input"]);
    expect(form.codeImage("http://h:1")).toEqual({
      kind: "download",
      url: "http://h:1/api/history/g1/input",
      type: "image/png",
    });
    await form.pickFile(jpeg());
    form.rebase({
      kind: "server",
      url: "/api/history/g9/input",
      name: "IMG_1.jpg",
      generationId: "g9",
      role: "input",
    });
    expect(form.get().image?.ref).toMatchObject({ kind: "server", generationId: "g9" });
  });

  it("sends a URL as it is", async () => {
    const { form } = setup();
    await form.pickUrl("https://example.com/a.png");
    expect(form.get().image).toMatchObject({ width: 640, height: 480 });
    expect((await form.body()).input_image).toBe("https://example.com/a.png");
  });

  it("restores a workspace's values and its local image", async () => {
    const { form, blobs } = setup();
    await blobs.put(LOCAL_KEY, jpeg());
    form.setSchema("flux-kontext-dev", schema(), { prompt: "kept", guidance: 4 });
    await form.restoreImage({ kind: "local", key: LOCAL_KEY, name: "IMG_1.jpg", type: "image/jpeg" });
    expect([
      form.get().values.prompt,
      form.get().values.guidance,
      form.get().values.num_inference_steps,
    ]).toEqual(["kept", 4, 28]);
    expect(form.get().image?.bytes).toBe(12);
  });

  it("puts the server's refusal beside the fields it names", () => {
    const { form } = setup();
    form.refused(new Error("the engine is not ready"));
    expect(form.get().errors.general).toBe("the engine is not ready");
  });
});
