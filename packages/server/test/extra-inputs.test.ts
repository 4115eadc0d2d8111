// input_image_2..4 and mask_image refused as input_image is (each error naming its field, nothing
// queued or left stored), the combinations the gateway refuses before anything is stored, the
// Idempotency-Key covering them, and a database from before them (fake engine).
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqliteRecords } from "../src/jobs/sqlite-records.js";
import { withDefaults } from "../src/schema/flux-kontext-dev.js";
import { fakeEngine, type Harness, makeHarness, maskDataUri, pngDataUri } from "./helpers.js";

const bytesOf = (uri: string) => Buffer.from(uri.split(",")[1] as string, "base64");
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("reference images and masks: refusals", () => {
  let h: Harness;
  let input: string;
  beforeAll(async () => {
    h = await makeHarness({
      config: { maxInputPixels: 100_000 },
      command: fakeEngine({ FAKE_STEP_MS: "5" }),
    });
    input = await pngDataUri(64, 48);
  });
  afterAll(async () => h?.close());

  const post = (extra: Record<string, unknown>, headers: Record<string, string> = {}) =>
    h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      headers,
      payload: { input_image: input, prompt: "p", num_inference_steps: 4, ...extra },
    });
  /** Refused with `status`, the error naming `field`; nothing queued, nothing of it left stored. */
  const refused = async (extra: Record<string, unknown>, status: number, field: string, detail: RegExp) => {
    const before = h.store.list({ statuses: ["queued", "processing", "succeeded"], limit: 1000 }).length;
    const res = await post(extra);
    expect(res.statusCode, res.body).toBe(status);
    const error = res.json().error;
    expect(error.fields, res.body).toEqual([field]);
    expect(error.detail).toMatch(detail);
    expect(h.store.list({ statuses: ["queued", "processing", "succeeded"], limit: 1000 })).toHaveLength(
      before,
    );
    for (const v of Object.values(extra))
      if (typeof v === "string" && v.startsWith("data:"))
        expect(await h.files.findInput(sha256(bytesOf(v))), "left stored").toBeNull();
    return error;
  };

  it("an undecodable, malformed or oversized reference or mask is refused naming its field", async () => {
    const notAnImage = `data:image/png;base64,${Buffer.from("certainly not a png").toString("base64")}`;
    let e = await refused({ input_image_2: notAnImage }, 422, "input_image_2", /^input_image_2: /);
    expect(e.type).toBe("input_image_undecodable");
    e = await refused({ mask_image: "%%% not base64" }, 400, "mask_image", /^mask_image: must be an http/);
    expect(e.type).toBe("input_image_invalid");
    const big = await pngDataUri(400, 300); // 120,000 pixels, over the limit of 100,000
    e = await refused(
      { input_image_2: await pngDataUri(20, 20), input_image_3: big },
      413,
      "input_image_3",
      /100000/,
    );
    expect(e.type).toBe("input_image_too_large");
    e = await refused({ mask_image: big }, 413, "mask_image", /KONTEXT_MAX_INPUT_PIXELS/);
  });

  it("a mask with nothing to change is refused: nothing white, or nothing transparent", async () => {
    const none = () => false;
    await refused(
      { mask_image: await maskDataUri(64, 48, none) },
      400,
      "mask_image",
      /nothing to edit.*white/,
    );
    // Alpha everywhere 200 (barely transparent): read by its alpha, and nothing is transparent enough.
    const faint = await sharp({
      create: {
        width: 64,
        height: 48,
        channels: 4,
        background: { r: 255, g: 255, b: 255, alpha: 200 / 255 },
      },
    })
      .png()
      .toBuffer();
    await refused(
      { mask_image: `data:image/png;base64,${faint.toString("base64")}` },
      400,
      "mask_image",
      /nothing to edit.*transparent/,
    );
  });

  it("references fill input_image_2 up; a mask or strength below 1 keeps the input's shape", async () => {
    const ref = await pngDataUri(20, 20);
    await refused({ input_image_3: ref }, 400, "input_image_3", /needs input_image_2/);
    await refused({ input_image_2: ref, input_image_4: ref }, 400, "input_image_4", /needs input_image_3/);
    await refused(
      { strength: 0.5, aspect_ratio: "1:1" },
      400,
      "aspect_ratio",
      /match_input_image with strength below 1/,
    );
    await refused(
      { mask_image: await maskDataUri(64, 48), aspect_ratio: "16:9" },
      400,
      "aspect_ratio",
      /match_input_image with a masked edit/,
    );
    // strength below 1 and a mask are fine at the input's shape, a mask with output_resolution input too
    expect((await post({ strength: 0.5 })).statusCode).toBe(200);
    expect(
      (await post({ mask_image: await maskDataUri(64, 48), output_resolution: "input" })).statusCode,
    ).toBe(200);
  });

  it("a fifth image is refused naming it: input_image_2..4 are the only references", async () => {
    const ref = await pngDataUri(20, 20);
    await refused(
      { input_image_2: ref, input_image_3: ref, input_image_4: ref, input_image_5: ref },
      400,
      "input_image_5",
      /^input_image_5: unknown field \(not a parameter of this model\)/,
    );
  });

  it("a reference without input_image is a schema error, as a request without input_image is", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      payload: { input_image_2: await pngDataUri(20, 20), prompt: "p" },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.detail).toMatch(/input_image/);
  });

  it("an Idempotency-Key covers the reference images and the mask", async () => {
    const ref = await pngDataUri(20, 20, { r: 1, g: 2, b: 3 });
    const other = await pngDataUri(20, 20, { r: 3, g: 2, b: 1 });
    const key = { "idempotency-key": `refs-${Date.now()}` };
    const first = await post({ input_image_2: ref }, key);
    expect(first.statusCode, first.body).toBe(200);
    const repeat = await post({ input_image_2: ref }, key);
    expect(repeat.json().generations[0].generation_id).toBe(first.json().generations[0].generation_id);
    const changed = await post({ input_image_2: other }, key);
    expect(changed.statusCode).toBe(409);
    expect(changed.json().error.type).toBe("idempotency_conflict");
    const masked = await post({ input_image_2: ref, mask_image: await maskDataUri(64, 48) }, key);
    expect(masked.statusCode).toBe(409);
  });
});

describe("a database from before reference images and masks", () => {
  it("gets their columns; its generations read as having none; new ones keep theirs", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kontext-migrate-"));
    try {
      const file = path.join(dir, "kontext.db");
      new SqliteRecords(file).close();
      // As the version before wrote it: no reference_inputs, mask_input or generation_inputs.
      const db = new Database(file);
      db.exec(
        "ALTER TABLE generations DROP COLUMN reference_inputs; ALTER TABLE generations DROP COLUMN mask_input; DROP TABLE generation_inputs;",
      );
      db.prepare(
        `INSERT INTO generations (id, model, status, params, input_hash, input_path, input_width, input_height, seed, enqueued_at)
         VALUES ('old', 'flux-kontext-dev', 'succeeded', ?, 'a', 'a.png', 8, 8, 1, 1)`,
      ).run(JSON.stringify(withDefaults({ input_image: "x", prompt: "p" })));
      db.close();

      const records = new SqliteRecords(file);
      expect(records.get("old")).toMatchObject({ references: [], mask: null });
      const params = withDefaults({ input_image: "x", prompt: "p" });
      records.insertMany(
        [
          {
            id: "new",
            model: "flux-kontext-dev",
            params,
            input: { hash: "a", path: "a.png", width: 8, height: 8 },
            references: [{ hash: "r", width: 4, height: 4 }],
            mask: { hash: "m", width: 8, height: 8 },
            seed: 1,
          },
        ],
        2,
        () => ({}),
      );
      expect(records.get("new")).toMatchObject({
        references: [{ hash: "r", width: 4, height: 4 }],
        mask: { hash: "m", width: 8, height: 8 },
      });
      // Its reference and mask are in use while it holds its files, and released with them.
      expect([records.inputInUse("r", "old"), records.inputInUse("m", "old")]).toEqual([true, true]);
      expect(records.inputInUse("r", "new")).toBe(false); // itself aside
      expect([...records.inputsInUse(["a", "r", "m", "z"])].sort()).toEqual(["a", "m", "r"]);
      records.markExpired("new", 3);
      expect([records.inputInUse("r", "old"), records.inputInUse("m", "old")]).toEqual([false, false]);
      expect([...records.inputsInUse(["r", "m"])]).toEqual([]);
      records.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
