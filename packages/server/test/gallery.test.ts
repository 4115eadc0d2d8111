// The workbench's gallery on the server: small thumbnails of results and inputs, deleting a
// finished generation (its files, row and events), starring, and the history's status and
// starred filters; delete and star on both queue backends (test/redis.ts starts a Redis).
import sharp from "sharp";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { forEachBackend, type QueueHarness } from "./backends.js";
import { fakeEngine, type Harness, makeHarness, parseSse, pngDataUri } from "./helpers.js";

const KEY_A = "key-a-0123456789";
const KEY_B = "key-b-9876543210";
const as = (key: string) => ({ authorization: `Bearer ${key}` });
type Item = Record<string, unknown>;

describe("thumbnails", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await makeHarness({ command: fakeEngine({ FAKE_STEP_MS: "2", FAKE_FAIL_PROMPT: "explode" }) });
  });
  afterAll(async () => h?.close());

  const edit = async (payload: Record<string, unknown>) =>
    h.app.inject({
      method: "POST",
      url: "/api/ai/images/edit",
      payload: { num_inference_steps: 4, ...payload },
    });
  const item = async (id: string) =>
    ((await h.app.inject({ url: "/api/history" })).json().generations as Item[]).find(
      (g) => g.generation_id === id,
    ) as Item;

  it("serves WebP thumbnails of the result and the input, longest side 256 (or size), cached for good", async () => {
    const res = await edit({
      input_image: await pngDataUri(600, 400),
      prompt: "thumbs",
      output_format: "png",
    });
    expect(res.statusCode, res.body).toBe(200);
    const id = res.json().generation_id as string;
    const g = await item(id);
    expect(g.thumbnail_url).toMatch(new RegExp(`/api/history/${id}/thumbnail$`));
    expect(g.input_thumbnail_url).toMatch(new RegExp(`/api/history/${id}/input/thumbnail$`));
    expect(g.starred).toBe(false);

    const input = await h.app.inject({ url: new URL(g.input_thumbnail_url as string).pathname });
    expect(input.statusCode, input.body).toBe(200);
    expect(input.headers["content-type"]).toBe("image/webp");
    expect(input.headers["cache-control"]).toBe("public, max-age=86400, immutable");
    const im = await sharp(input.rawPayload).metadata();
    expect([im.format, im.width, im.height]).toEqual(["webp", 256, 171]);
    const small = await h.app.inject({ url: `/api/history/${id}/input/thumbnail?size=64` });
    const sm = await sharp(small.rawPayload).metadata();
    expect([sm.width, sm.height]).toEqual([64, 43]);

    // The fake engine's result is 80×64: never enlarged.
    const result = await h.app.inject({ url: new URL(g.thumbnail_url as string).pathname });
    expect(result.statusCode, result.body).toBe(200);
    expect(result.headers["content-type"]).toBe("image/webp");
    expect(result.headers["cache-control"]).toBe("public, max-age=86400, immutable");
    const rm = await sharp(result.rawPayload).metadata();
    expect([rm.format, rm.width, rm.height]).toEqual(["webp", 80, 64]);
    const again = await h.app.inject({ url: `/api/history/${id}/thumbnail` });
    expect(again.rawPayload).toEqual(result.rawPayload);

    for (const q of ["?size=63", "?size=513", "?size=abc", "?colour=red"]) {
      const bad = await h.app.inject({ url: `/api/history/${id}/thumbnail${q}` });
      expect(bad.statusCode, q).toBe(400);
      expect(bad.json().error.fields, q).toEqual([q.includes("colour") ? "colour" : "size"]);
    }

    // Once its files are gone (retention), 404 result_not_found even when it was cached.
    const file = h.store.get(id)?.resultFile as string;
    h.store.markExpired(id, Date.now());
    await h.files.removeResult(file);
    const gone = await h.app.inject({ url: `/api/history/${id}/thumbnail` });
    expect(gone.statusCode).toBe(404);
    expect(gone.json().error.type).toBe("result_not_found");
    expect((await item(id)).thumbnail_url).toBeNull();
  });

  it("has no result thumbnail for a failed generation, and 404s an unknown one", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      payload: { input_image: await pngDataUri(), prompt: "explode", num_inference_steps: 4 },
    });
    const id = res.json().generations[0].generation_id as string;
    const events = parseSse((await h.app.inject({ url: `/api/ai/queue/${id}/events` })).body);
    expect(events.at(-1)?.data).toMatchObject({ status: "failed" });
    const g = await item(id);
    expect(g.thumbnail_url).toBeNull();
    expect(typeof g.input_thumbnail_url).toBe("string");
    const none = await h.app.inject({ url: `/api/history/${id}/thumbnail` });
    expect(none.statusCode).toBe(404);
    expect(none.json().error.type).toBe("result_not_found");
    expect((await h.app.inject({ url: `/api/history/${id}/input/thumbnail` })).statusCode).toBe(200);
    const unknown = await h.app.inject({ url: "/api/history/nope/thumbnail" });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.type).toBe("generation_not_found");
  });

  it("marks the API-only request fields for the form, in a schema Ajv still compiles", async () => {
    const m = (await h.app.inject({ url: "/api/ai/models/flux-kontext-dev" })).json();
    const props = m.json_request_schema.properties as Record<string, Record<string, unknown>>;
    for (const f of ["response_format", "stream", "webhook", "webhook_events_filter"])
      expect(props[f]?.["x-kontext-form"], f).toBe(false);
    for (const f of ["prompt", "num_generations", "seed", "guidance"])
      expect(props[f]?.["x-kontext-form"], f).toBeUndefined();
    // still validated as before
    const bad = await edit({ input_image: await pngDataUri(), prompt: "p", stream: "yes" });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.fields).toEqual(["stream"]);
  });
});

forEachBackend((backend, makeOn) => {
  describe(`gallery: delete, star and filters on the ${backend} queue`, () => {
    let h: QueueHarness | null = null;
    afterEach(async () => {
      await h?.close();
      h = null;
    });
    const make = () =>
      makeOn({
        config: { apiKeys: [KEY_A, KEY_B] },
        command: fakeEngine({ FAKE_STEP_MS: "20", FAKE_FAIL_PROMPT: "explode" }),
      });
    const submit = async (q: QueueHarness, extra: Record<string, unknown> = {}, key = KEY_A) => {
      const res = await q.app.inject({
        method: "POST",
        url: "/api/ai/queue",
        headers: as(key),
        payload: {
          input_image: await pngDataUri(),
          prompt: "make it blue",
          num_inference_steps: 4,
          ...extra,
        },
      });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().generations[0].generation_id as string;
    };
    /** Follows the generation's event stream to its end: its final status. */
    const finished = async (q: QueueHarness, id: string, key = KEY_A) => {
      const events = parseSse(
        (await q.app.inject({ url: `/api/ai/queue/${id}/events`, headers: as(key) })).body,
      );
      return (events.at(-1)?.data as Item | undefined)?.status;
    };
    const history = async (q: QueueHarness, query = "", key = KEY_A) => {
      const res = await q.app.inject({ url: `/api/history${query}`, headers: as(key) });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().generations as Item[];
    };

    it("deletes a finished generation's result, row and events, and its input once nothing else uses it", async () => {
      const q = await make();
      h = q;
      const x = await submit(q, { output_format: "png" });
      const y = await submit(q); // the same input image
      expect(await finished(q, x)).toBe("succeeded");
      expect(await finished(q, y)).toBe("succeeded");
      const items = await history(q);
      const gx = items.find((g) => g.generation_id === x) as Item;
      const resultName = new URL(gx.result_url as string).pathname.split("/").pop() as string;
      const resultBytes = (await q.app.inject({ url: new URL(gx.result_url as string).pathname })).rawPayload;
      const inputHash = (await q.queue.get(x))?.input?.hash as string;

      // Another key's generation is 404, as if it did not exist; so is an unknown one.
      const theirs = await q.app.inject({ method: "DELETE", url: `/api/history/${x}`, headers: as(KEY_B) });
      expect(theirs.statusCode).toBe(404);
      expect(theirs.json().error.type).toBe("generation_not_found");
      const unknown = await q.app.inject({ method: "DELETE", url: "/api/history/nope", headers: as(KEY_A) });
      expect(unknown.statusCode).toBe(404);

      const del = await q.app.inject({ method: "DELETE", url: `/api/history/${x}`, headers: as(KEY_A) });
      expect(del.statusCode, del.body).toBe(200);
      expect(del.json()).toEqual({ status: "success", generation_id: x });
      expect(await q.queue.get(x)).toBeNull();
      expect(await q.queue.eventsOf(x)).toEqual([]);
      expect((await q.app.inject({ url: `/api/ai/queue/${x}`, headers: as(KEY_A) })).statusCode).toBe(404);
      expect((await history(q)).map((g) => g.generation_id)).toEqual([y]);
      expect(await q.files.readResult(resultName)).toBeNull();
      expect((await q.app.inject({ url: `/results/${resultName}` })).statusCode).toBe(404);
      expect(await q.files.readInput({ hash: inputHash })).not.toBeNull(); // y still uses it
      expect((await q.app.inject({ url: `/api/history/${y}/input`, headers: as(KEY_A) })).statusCode).toBe(
        200,
      );
      const twice = await q.app.inject({ method: "DELETE", url: `/api/history/${x}`, headers: as(KEY_A) });
      expect(twice.statusCode).toBe(404);

      // An input with the deleted result's bytes starts a new chain (no link to a deleted parent).
      const z = await submit(q, { input_image: `data:image/png;base64,${resultBytes.toString("base64")}` });
      expect(await finished(q, z)).toBe("succeeded");
      expect((await history(q)).find((g) => g.generation_id === z)?.parent_generation_id).toBeNull();

      const last = await q.app.inject({ method: "DELETE", url: `/api/history/${y}`, headers: as(KEY_A) });
      expect(last.statusCode).toBe(200);
      expect(await q.files.readInput({ hash: inputHash })).toBeNull(); // its last user is gone
    });

    it("refuses to delete a queued or processing generation: 409 generation_active", async () => {
      const q = await make();
      h = q;
      const running = await submit(q, { num_inference_steps: 50 });
      const waiting = await submit(q, { num_inference_steps: 50 });
      for (const id of [running, waiting]) {
        const res = await q.app.inject({ method: "DELETE", url: `/api/history/${id}`, headers: as(KEY_A) });
        expect(res.statusCode).toBe(409);
        expect(res.json().error.type).toBe("generation_active");
        expect(res.json().error.detail).toMatch(/cancel it first/);
      }
      for (const id of [waiting, running])
        await q.app.inject({ method: "DELETE", url: `/api/ai/queue/${id}`, headers: as(KEY_A) });
      expect(await finished(q, running)).toBe("cancelled");
      const res = await q.app.inject({
        method: "DELETE",
        url: `/api/history/${running}`,
        headers: as(KEY_A),
      });
      expect(res.statusCode).toBe(200);
    });

    it("stars (PATCH starred), and filters the history by starred and status", async () => {
      const q = await make();
      h = q;
      const ok = await submit(q);
      const bad = await submit(q, { prompt: "explode" });
      expect(await finished(q, ok)).toBe("succeeded");
      expect(await finished(q, bad)).toBe("failed");
      const patch = (id: string, payload: unknown, key = KEY_A) =>
        q.app.inject({
          method: "PATCH",
          url: `/api/history/${id}`,
          headers: as(key),
          payload: payload as object,
        });

      const starred = await patch(ok, { starred: true });
      expect(starred.statusCode, starred.body).toBe(200);
      expect(starred.json()).toMatchObject({ generation_id: ok, starred: true, status: "succeeded" });
      expect((await history(q, "?starred=true")).map((g) => g.generation_id)).toEqual([ok]);
      expect((await history(q, "?starred=false")).map((g) => g.generation_id)).toEqual([bad]);
      expect((await history(q)).map((g) => [g.generation_id, g.starred])).toEqual([
        [bad, false],
        [ok, true],
      ]);
      expect((await history(q, "?status=failed")).map((g) => g.generation_id)).toEqual([bad]);
      expect((await history(q, "?status=succeeded,failed")).length).toBe(2);
      expect((await history(q, "?status=all&starred=true")).map((g) => g.generation_id)).toEqual([ok]);
      expect(await history(q, "?status=cancelled")).toEqual([]);

      for (const [payload, field] of [
        [{ starred: true, colour: "red" }, "colour"],
        [{ starred: "yes" }, "starred"],
        [{}, "starred"],
      ] as const) {
        const res = await patch(ok, payload);
        expect(res.statusCode, JSON.stringify(payload)).toBe(400);
        expect(res.json().error.fields).toEqual([field]);
      }
      const bogus = await q.app.inject({ url: "/api/history?status=done", headers: as(KEY_A) });
      expect(bogus.statusCode).toBe(400);
      expect(bogus.json().error.fields).toEqual(["status"]);
      const notBool = await q.app.inject({ url: "/api/history?starred=yes", headers: as(KEY_A) });
      expect(notBool.statusCode).toBe(400);
      expect(notBool.json().error.fields).toEqual(["starred"]);
      expect((await patch(ok, { starred: false }, KEY_B)).statusCode).toBe(404);
      expect((await history(q, "?starred=true", KEY_B)).length).toBe(0);

      const unstar = await patch(ok, { starred: false });
      expect(unstar.json().starred).toBe(false);
      expect(await history(q, "?starred=true")).toEqual([]);
    });
  });
});
