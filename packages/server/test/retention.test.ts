// Retention by age and the disk cap on both queue backends: the embedded SQLite queue, and Redis
// with a gateway and a worker sharing one file store (KONTEXT_SHARED_DIR's layout), so what
// retention sweeps is the backend's own records, not the gateway's SQLite file.
import { existsSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { forEachBackend, type QueueHarness } from "./backends.js";
import { fakeEngine, maskDataUri, noisePngDataUri, pngDataUri } from "./helpers.js";
import { poll } from "./support.js";

forEachBackend((backend, makeOn) => {
  describe(`retention and the disk cap on the ${backend} queue`, () => {
    let h: QueueHarness | null = null;
    afterEach(async () => {
      await h?.close();
      h = null;
    });
    const submit = async (q: QueueHarness, input_image: string, steps = 4) => {
      const res = await q.app.inject({
        method: "POST",
        url: "/api/ai/queue",
        payload: { input_image, prompt: "p", num_inference_steps: steps },
      });
      return res;
    };
    const idOf = (res: { json(): { generations: Array<{ generation_id: string }> } }) =>
      res.json().generations[0]?.generation_id as string;
    const view = async (q: QueueHarness, id: string) =>
      (await q.app.inject({ url: `/api/ai/queue/${id}` })).json() as Record<string, unknown>;
    const finished = (q: QueueHarness, id: string) =>
      poll(
        () => view(q, id),
        (g) => ["succeeded", "failed", "cancelled"].includes(g.status as string),
        `${id} to finish`,
        { timeoutMs: 30_000 },
      );

    it("deletes a generation's input and result once past the retention time; its record stays", async () => {
      // 0.0003 h ≈ 1 s: the generation is past it a moment after it finished.
      h = await makeOn({ config: { resultTtlHours: 0.0003 }, command: fakeEngine({ FAKE_STEP_MS: "5" }) });
      const id = idOf(await submit(h, await pngDataUri(40, 30)));
      const done = await finished(h, id);
      expect(done.status).toBe("succeeded");
      const g = await h.queue.get(id);
      const result = h.files.resultPath(g?.resultFile as string);
      expect(existsSync(result), "the result file before the sweep").toBe(true);
      expect(await h.files.findInput(g?.input?.hash as string), "the input before the sweep").not.toBeNull();

      await new Promise((r) => setTimeout(r, 1_300));
      await h.retention.sweep();
      expect(existsSync(result), "the result file after the sweep").toBe(false);
      expect(await h.files.findInput(g?.input?.hash as string), "the input after the sweep").toBeNull();
      const after = await view(h, id);
      expect(after).toMatchObject({ status: "succeeded", prompt: "p", result_url: null });
      expect((await h.app.inject({ url: `/results/${g?.resultFile}` })).statusCode).toBe(404);
      expect((await h.queue.get(id))?.expiredAt, "expired_at recorded").not.toBeNull();
    });

    it("deletes a text-to-image generation's result past the retention time (it has no input), beside an edit's files", async () => {
      h = await makeOn({ config: { resultTtlHours: 0.0003 }, command: fakeEngine({ FAKE_STEP_MS: "5" }) });
      const q = h;
      const res = await q.app.inject({
        method: "POST",
        url: "/api/ai/queue",
        payload: { prompt: "a fox", aspect_ratio: "1:1", num_inference_steps: 4 },
      });
      expect(res.statusCode, res.body).toBe(200);
      const t2i = idOf(res);
      const edit = idOf(await submit(q, await pngDataUri(40, 30)));
      expect((await finished(q, t2i)).status).toBe("succeeded");
      expect((await finished(q, edit)).status).toBe("succeeded");
      const g = await q.queue.get(t2i);
      expect(g?.input).toBeNull();
      const result = q.files.resultPath(g?.resultFile as string);
      expect(existsSync(result)).toBe(true);

      await new Promise((r) => setTimeout(r, 1_300));
      await q.retention.sweep();
      expect(existsSync(result), "the generated image after the sweep").toBe(false);
      expect((await q.queue.get(t2i))?.expiredAt, "expired_at recorded").not.toBeNull();
      expect(await view(q, t2i)).toMatchObject({ status: "succeeded", prompt: "a fox", result_url: null });
      const e = await q.queue.get(edit);
      expect(await q.files.findInput(e?.input?.hash as string), "the edit's input expired too").toBeNull();
      expect(e?.expiredAt).not.toBeNull();
    });

    it("evicts the oldest finished generation's files when over the cap; 507 while only running ones hold files", async () => {
      // 1 MiB cap; each 600×600 noise input takes about 1.1 MB.
      h = await makeOn({ config: { storageCapMb: 1 }, command: fakeEngine({ FAKE_STEP_MS: "40" }) });
      const a = idOf(await submit(h, await noisePngDataUri(1)));
      expect((await finished(h, a)).status).toBe("succeeded");
      const aHash = (await h.queue.get(a))?.input?.hash as string;

      const bRes = await submit(h, await noisePngDataUri(2), 50); // over the cap: a's files make room
      expect(bRes.statusCode, bRes.body).toBe(200);
      const b = idOf(bRes);
      expect(await h.files.findInput(aHash), "a's input evicted").toBeNull();
      expect(await view(h, a)).toMatchObject({ status: "succeeded", result_url: null });

      const full = await submit(h, await noisePngDataUri(3)); // b is queued or running: nothing can go
      expect(full.statusCode, "the third submission, while b holds the only big file").toBe(507);
      expect(full.json().error.type).toBe("storage_full");
      expect(full.headers["retry-after"]).toBeDefined();

      await h.app.inject({ method: "DELETE", url: `/api/ai/queue/${b}` });
      expect((await finished(h, b)).status).toBe("cancelled");
      const again = await submit(h, await noisePngDataUri(3));
      expect(again.statusCode, `once b is finished: ${again.body}`).toBe(200);
      expect((await finished(h, idOf(again))).status).toBe("succeeded");
    });

    it("keeps a reference and a mask while a running generation needs them; expiry and deletion release them", async () => {
      h = await makeOn({ config: { resultTtlHours: 0.0003 }, command: fakeEngine({ FAKE_STEP_MS: "40" }) });
      const q = h;
      const [x, y, ref, mask] = await Promise.all([
        pngDataUri(40, 30, { r: 1, g: 1, b: 1 }),
        pngDataUri(40, 30, { r: 2, g: 2, b: 2 }),
        pngDataUri(24, 24, { r: 3, g: 3, b: 3 }),
        maskDataUri(40, 30),
      ]);
      const post = async (payload: Record<string, unknown>) => {
        const res = await q.app.inject({
          method: "POST",
          url: "/api/ai/queue",
          payload: { prompt: "p", ...payload },
        });
        expect(res.statusCode, res.body).toBe(200);
        return idOf(res);
      };
      const hashes = async (id: string) => {
        const g = await q.queue.get(id);
        return {
          input: g?.input?.hash as string,
          ref: g?.references[0]?.hash as string,
          mask: g?.mask?.hash as string,
        };
      };
      const stored = async (hash: string) => (await q.files.findInput(hash)) !== null;

      // a: finished, with the reference and the mask; b: still running, with the same two.
      const a = await post({ input_image: x, input_image_2: ref, mask_image: mask, num_inference_steps: 4 });
      expect((await finished(q, a)).status).toBe("succeeded");
      const b = await post({ input_image: y, input_image_2: ref, mask_image: mask, num_inference_steps: 50 });
      const ha = await hashes(a);
      expect(await hashes(b)).toMatchObject({ ref: ha.ref, mask: ha.mask });

      await new Promise((r) => setTimeout(r, 1_300)); // a is past the retention time
      await q.retention.sweep();
      expect(await stored(ha.input), "a's own input, expired with it").toBe(false);
      expect(await stored(ha.ref), "the reference b still needs").toBe(true);
      expect(await stored(ha.mask), "the mask b still needs").toBe(true);

      await q.app.inject({ method: "DELETE", url: `/api/ai/queue/${b}` });
      expect((await finished(q, b)).status).toBe("cancelled");
      expect((await q.app.inject({ method: "DELETE", url: `/api/history/${b}` })).statusCode).toBe(200);
      expect(await stored(ha.ref), "the reference, once nothing needs it").toBe(false);
      expect(await stored(ha.mask), "the mask, once nothing needs it").toBe(false);
    });
  });
});

describe("the disk cap on a shared path", () => {
  it("counts what other processes sharing the path stored (a worker's results) before deciding", async () => {
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const path = await import("node:path");
    const { FileStore } = await import("../src/storage/files.js");
    const { Retention } = await import("../src/storage/retention.js");
    const shared = mkdtempSync(path.join(tmpdir(), "kontext-shared-"));
    const gateway = new FileStore(shared, { tmpDir: path.join(shared, "gw-tmp") });
    const worker = new FileStore(shared, { tmpDir: path.join(shared, "wk-tmp") }); // another process
    await worker.putResult("a.webp", Buffer.alloc(700_000));
    await worker.putResult("b.webp", Buffer.alloc(700_000));
    expect(gateway.usageBytes(), "the gateway's own account, before a sweep").toBe(0);
    const records = {
      withFilesOldestFirst: () => [],
      inputInUse: () => false,
      markExpired() {},
      forgetIdempotencyBefore() {},
    };
    const retention = new Retention(records, gateway, { ttlHours: 1, capBytes: 1024 * 1024 });
    await retention.sweep();
    expect(gateway.usageBytes()).toBe(1_400_000);
    await expect(
      retention.ensureRoom(),
      "1.4 MB held by running generations, cap 1 MiB",
    ).rejects.toMatchObject({
      code: "storage_full",
    });
  });
});
