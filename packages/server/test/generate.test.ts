// Text-to-image (POST /api/ai/images/generate, and the queue without input_image) against the real
// engine on the tiny model, on both queue backends: sync, queued and polled, streamed; the size
// follows aspect_ratio, a seed fixes the image, and a result can start an edit chain. And a job
// store made before text-to-image, migrated.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SqliteRecords } from "../src/jobs/sqlite-records.js";
import { generateWithDefaults, withDefaults } from "../src/schema/flux-kontext-dev.js";
import { forEachBackend, type QueueHarness } from "./backends.js";
import { parseSse, poll, realEngine } from "./helpers.js";

const command = realEngine(inject("python"), inject("tinyModelDir"));
const STEPS = 4;

forEachBackend((backend, make) => {
  describe(`text-to-image on the ${backend} queue (real engine, tiny model)`, () => {
    let h: QueueHarness;
    beforeAll(async () => {
      h = await make({ command });
    });
    afterAll(async () => h?.close());

    const generate = (payload: Record<string, unknown>, headers: Record<string, string> = {}) =>
      h.app.inject({ method: "POST", url: "/api/ai/images/generate", payload, headers });
    const get = async (url: string) => h.app.inject({ url });
    const resultBytes = async (url: string) => (await get(new URL(url).pathname)).rawPayload;
    type View = Record<string, unknown> & { status: string; seed: number; width: number; height: number };
    const finished = (id: string) =>
      poll(
        async () => (await get(`/api/ai/queue/${id}`)).json() as View,
        (g) => ["succeeded", "failed", "cancelled"].includes(g.status),
        `generation ${id}`,
        { timeoutMs: 180_000, intervalMs: 100 },
      );

    it("sync: the image's size follows aspect_ratio, and the same seed gives the same image", async () => {
      const body = {
        prompt: "a lighthouse at dusk",
        aspect_ratio: "16:9",
        num_inference_steps: STEPS,
        seed: 5,
      };
      const res = await generate({ ...body, output_format: "png" });
      expect(res.statusCode, res.body).toBe(200);
      const out = res.json();
      expect([out.width, out.height, out.seed, out.output_format]).toEqual([1392, 752, 5, "png"]); // 16:9's bucket
      const png = await resultBytes(out.images[0].url);
      const meta = await sharp(png).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(["png", 1392, 752]);

      const again = (await generate({ ...body, output_format: "png" })).json();
      expect(again.generation_id).not.toBe(out.generation_id);
      expect(await resultBytes(again.images[0].url)).toEqual(png);
      const other = (await generate({ ...body, seed: 6, output_format: "png" })).json();
      expect(await resultBytes(other.images[0].url)).not.toEqual(png);

      // Without an input: no input_image in its record, and no input in the history.
      const view = (await get(`/api/ai/queue/${out.generation_id}`)).json();
      expect(view).toMatchObject({ status: "succeeded", aspect_ratio: "16:9", width: 1392, height: 752 });
      expect(view).not.toHaveProperty("input_image");
      expect(view).not.toHaveProperty("strength");
      const item = (await get("/api/history?limit=50"))
        .json()
        .generations.find((g: { generation_id: string }) => g.generation_id === out.generation_id);
      expect(item).toMatchObject({
        input_url: null,
        input_width: null,
        input_height: null,
        input_thumbnail_url: null,
      });
      expect(item.thumbnail_url).toMatch(/\/thumbnail$/);
      for (const path of ["input", "input/thumbnail"]) {
        const none = await get(`/api/history/${out.generation_id}/${path}`);
        expect(none.statusCode, path).toBe(404);
        expect(none.json().error.detail).toContain("text-to-image");
      }
    });

    it("queued and polled: num_generations 2 of 3:4, seeds seed + i, each its own image", async () => {
      const res = await h.app.inject({
        method: "POST",
        url: "/api/ai/queue",
        payload: {
          prompt: "a red fox",
          aspect_ratio: "3:4",
          num_inference_steps: STEPS,
          seed: 11,
          num_generations: 2,
        },
      });
      expect(res.statusCode, res.body).toBe(200);
      const ids = res.json().generations.map((g: { generation_id: string }) => g.generation_id);
      expect(ids).toHaveLength(2);
      const done = await Promise.all(ids.map(finished));
      expect(done.map((g) => [g.status, g.seed, g.width, g.height])).toEqual([
        ["succeeded", 11, 880, 1184],
        ["succeeded", 12, 880, 1184],
      ]);
      const [a, b] = await Promise.all(done.map((g) => resultBytes(g.result_url as string)));
      expect(a).not.toEqual(b);
    });

    it("streamed: queued, started at 1:1 by default, every step, completed", async () => {
      for (const [headers, extra] of [
        [{ accept: "text/event-stream" }, {}],
        [{}, { stream: true }],
      ] as const) {
        const res = await generate({ prompt: "a teapot", num_inference_steps: STEPS, ...extra }, headers);
        expect(res.statusCode).toBe(200);
        expect(res.headers["content-type"]).toContain("text/event-stream");
        const events = parseSse(res.body);
        expect(events.map((e) => e.event)).toEqual([
          "media_generation_queued",
          "media_generation_started",
          ...Array(STEPS).fill("media_generation_progress"),
          "media_generation_completed",
        ]);
        expect(events[1]?.data).toMatchObject({
          status: "processing",
          width: 1024,
          height: 1024,
          total_steps: STEPS,
        });
        expect(events.at(-1)?.data).toMatchObject({ status: "succeeded", width: 1024, height: 1024 });
        expect((events.at(-1)?.data as { url?: string } | undefined)?.url).toMatch(/\/results\//);
      }
    });

    it("a generated image starts an edit chain; deleting the generation leaves the edit", async () => {
      const gen = (
        await generate({
          prompt: "a cat",
          num_inference_steps: STEPS,
          response_format: "b64_json",
          output_format: "png",
        })
      ).json();
      const edit = await h.app.inject({
        method: "POST",
        url: "/api/ai/images/edit",
        payload: {
          input_image: `data:image/png;base64,${gen.images[0].b64_json}`,
          prompt: "give it a hat",
          num_inference_steps: STEPS,
        },
      });
      expect(edit.statusCode, edit.body).toBe(200);
      const items = (await get("/api/history?limit=50")).json().generations as Array<Record<string, unknown>>;
      const step = items.find((g) => g.generation_id === edit.json().generation_id);
      expect(step?.parent_generation_id).toBe(gen.generation_id);
      expect(step?.input_url).toMatch(/\/input$/);

      const del = await h.app.inject({ method: "DELETE", url: `/api/history/${gen.generation_id}` });
      expect(del.statusCode, del.body).toBe(200);
      expect((await get(`/api/ai/queue/${gen.generation_id}`)).statusCode).toBe(404);
      // the edit's input (the same bytes) is its own stored input: still served
      expect((await get(`/api/history/${edit.json().generation_id}/input`)).statusCode).toBe(200);
    });
  });
});

describe("a SQLite job store made before text-to-image", () => {
  it("gets nullable input columns, its rows, seqs and counter kept, and stores generations without an input", () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "kontext-migrate-")), "jobs.db");
    // the generations table as an earlier version created it: input columns NOT NULL
    const old = new Database(file);
    old.exec(`CREATE TABLE generations (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, model TEXT NOT NULL, status TEXT NOT NULL,
      params TEXT NOT NULL, input_hash TEXT NOT NULL, input_path TEXT NOT NULL, input_width INTEGER NOT NULL,
      input_height INTEGER NOT NULL, seed INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
      enqueued_at INTEGER NOT NULL, started_at INTEGER, completed_at INTEGER, width INTEGER, height INTEGER,
      step INTEGER NOT NULL DEFAULT 0, total_steps INTEGER, result_file TEXT, error_code TEXT, error_message TEXT,
      timings TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0)`);
    const insert = old.prepare(
      `INSERT INTO generations (id, model, status, params, input_hash, input_path, input_width, input_height, seed, enqueued_at)
       VALUES (?, 'flux-kontext-dev', 'succeeded', ?, 'ab', '/inputs/ab.png', 40, 30, 1, 1)`,
    );
    const params = JSON.stringify(withDefaults({ input_image: "x", prompt: "an old edit" }));
    insert.run("old-1", params);
    insert.run("old-2", params);
    old.prepare("DELETE FROM generations WHERE id = 'old-2'").run(); // seq 2 is used up
    old.close();

    const store = new SqliteRecords(file);
    expect(store.get("old-1")).toMatchObject({
      seq: 1,
      params: { prompt: "an old edit" },
      input: { hash: "ab", path: "/inputs/ab.png", width: 40, height: 30 },
      starred: false, // a column added by the earlier migrations, beside the rebuild
    });
    const [inserted] = store.insertMany(
      [
        {
          id: "t2i",
          model: "flux-kontext-dev",
          params: generateWithDefaults({ prompt: "a fox" }),
          input: null,
          seed: 3,
        },
      ],
      2,
      () => ({}),
    );
    expect(inserted?.generation).toMatchObject({ seq: 3, input: null }); // AUTOINCREMENT never reuses seq 2
    expect(store.get("t2i")?.parentId).toBeNull();
    expect(store.history({ limit: 10 }).map((g) => g.id)).toEqual(["t2i", "old-1"]);
    store.close();

    // opened again: nothing left to rebuild, and the rows are where they were
    const again = new SqliteRecords(file);
    expect(again.get("t2i")?.input).toBeNull();
    expect(again.get("old-1")?.input?.hash).toBe("ab");
    again.close();
  });
});
