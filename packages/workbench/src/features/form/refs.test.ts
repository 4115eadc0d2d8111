// The reference images beside the input (input_image_2…4): a slot exists only when the model's
// schema has the field; each is sent as input_image is, kept by reference for a reload, given to
// copied code, and clearing one moves the later ones up (the server needs no gap).
import { KontextError } from "@kontext/client";
import { describe, expect, it } from "vitest";
import { memoryBlobs } from "../workspace/blobs.js";
import { newFieldsSchema } from "./fixtures.js";
import { Form, refKey } from "./form.js";
import type { ImageDeps } from "./image.js";

const images: ImageDeps = {
  measure: async () => ({ width: 800, height: 600 }),
  measureUrl: async () => ({ width: 640, height: 480 }),
  objectUrl: () => "blob:preview",
  revoke: () => undefined,
  dataUri: async (b) => `data:${b.type};base64,${Buffer.from(await b.arrayBuffer()).toString("base64")}`,
  reencode: async (b) => b,
};
const png = (byte: number, name: string) =>
  Object.assign(new Blob([new Uint8Array([0x89, 0x50, 0x4e, 0x47, byte])], { type: "image/png" }), { name });
const b64 = (byte: number) => Buffer.from([0x89, 0x50, 0x4e, 0x47, byte]).toString("base64");

function setup(schema: Record<string, unknown> = newFieldsSchema(), blobs = memoryBlobs()) {
  const form = new Form({ images, blobs, fetchBlob: async () => png(9, "server.png") });
  form.setSchema("flux-kontext-dev", schema);
  return { form, blobs };
}

describe("reference images", () => {
  it("has a slot for each input_image_N the schema has, and none without them", () => {
    expect(setup().form.refFields.map((f) => [f.name, f.kind])).toEqual([
      ["input_image_2", "reference"],
      ["input_image_3", "reference"],
      ["input_image_4", "reference"],
    ]);
    const s = newFieldsSchema();
    for (const k of ["input_image_2", "input_image_3", "input_image_4"]) delete s.properties[k];
    const { form } = setup(s);
    expect(form.refFields).toEqual([]);
    expect(form.get().values).not.toHaveProperty("input_image_2");
  });

  it("sends each reference as input_image is sent, and none of them as a form value", async () => {
    const { form, blobs } = setup();
    await form.pickFile(png(1, "input.png"));
    expect(await form.pickRefFile("input_image_2", png(2, "hat.png"))).toBe(true);
    await form.pickRefUrl("input_image_3", "https://example.com/style.jpg");
    form.setValue("prompt", "put the hat on the cat");
    expect(form.check()).toBe(true);
    const body = (await form.body()) as unknown as Record<string, unknown>;
    expect(body.input_image).toBe(`data:image/png;base64,${b64(1)}`);
    expect(body.input_image_2).toBe(`data:image/png;base64,${b64(2)}`);
    expect(body.input_image_3).toBe("https://example.com/style.jpg");
    expect(body).not.toHaveProperty("input_image_4");
    expect(form.plainBody()).not.toHaveProperty("input_image_2");
    expect(blobs.map.get(refKey("input_image_2"))?.size).toBe(5); // kept for a reload
    expect(form.codeRefs("http://h")).toEqual([
      { field: "input_image_2", image: { kind: "file", name: "hat.png", type: "image/png" } },
      { field: "input_image_3", image: { kind: "url", url: "https://example.com/style.jpg" } },
    ]);
  });

  it("refuses a file the server cannot read beside its slot", async () => {
    const { form } = setup();
    const heic = Object.assign(new Blob([new Uint8Array([0, 0, 0, 0, ...Buffer.from("ftypheic")])]), {
      name: "IMG_2.HEIC",
    });
    expect(await form.pickRefFile("input_image_2", heic)).toBe(false);
    expect(form.get().errors.fields.input_image_2).toMatch(/HEIC/);
    expect(form.get().refs).toEqual({});
  });

  it("puts the server's refusal of a reference or the mask beside it", () => {
    const { form } = setup();
    const res = new Response(null, { status: 400 });
    form.refused(
      KontextError.from(res, {
        error: {
          type: "invalid_request",
          detail: "input_image_3: needs input_image_2; mask_image: nothing to edit (the mask is all black)",
          fields: ["input_image_3", "mask_image"],
        },
      }),
    );
    expect(form.get().errors.fields).toEqual({
      input_image_3: "needs input_image_2",
      mask_image: "nothing to edit (the mask is all black)",
    });
    form.clearError("mask_image");
    expect(Object.keys(form.get().errors.fields)).toEqual(["input_image_3"]);
  });

  it("moves the later references up when one is cleared", async () => {
    const { form, blobs } = setup();
    await form.pickRefFile("input_image_2", png(2, "a.png"));
    await form.pickRefFile("input_image_3", png(3, "b.png"));
    await form.pickRefUrl("input_image_4", "https://example.com/c.png");
    await form.clearRef("input_image_2");
    expect(Object.entries(form.get().refs).map(([k, v]) => [k, v.ref.name])).toEqual([
      ["input_image_2", "b.png"],
      ["input_image_3", "https://example.com/c.png"],
    ]);
    expect(form.refRefs().input_image_2).toMatchObject({ kind: "local", key: refKey("input_image_2") });
    expect(blobs.map.get(refKey("input_image_2"))?.size).toBe(5);
    expect(blobs.map.has(refKey("input_image_4"))).toBe(false);
    const body = (await form.body()) as unknown as Record<string, unknown>;
    expect(body.input_image_2).toBe(`data:image/png;base64,${b64(3)}`);
    expect(body.input_image_3).toBe("https://example.com/c.png");
  });

  it("restores the references a reload finds in the workspace", async () => {
    const blobs = memoryBlobs();
    const first = setup(newFieldsSchema(), blobs).form;
    await first.pickRefFile("input_image_2", png(2, "hat.png"));
    const saved = JSON.parse(JSON.stringify(first.refRefs()));
    const { form } = setup(newFieldsSchema(), blobs);
    await form.restoreRefs(saved);
    expect(form.get().refs.input_image_2).toMatchObject({ width: 800, height: 600, bytes: 5 });
    expect(((await form.body()) as unknown as Record<string, unknown>).input_image_2).toBe(
      `data:image/png;base64,${b64(2)}`,
    );
  });
});
