// Retention, the disk cap (oldest-first eviction, 507 when nothing can be freed) and a full disk,
// against the fake engine.
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FileStore } from "../src/storage/files.js";
import { Retention } from "../src/storage/retention.js";
import { fakeEngine, type Harness, makeHarness, noisePngDataUri, pngDataUri, waitFor } from "./helpers.js";

const filesUnder = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));

describe("storage", () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  const queue = async (input_image: string, extra: Record<string, unknown> = {}) =>
    (h as Harness).app.inject({
      method: "POST",
      url: "/api/ai/queue",
      payload: { input_image, prompt: "p", num_inference_steps: 4, ...extra },
    });
  const idOf = (res: { json(): { generations: Array<{ generation_id: string }> } }) =>
    res.json().generations[0]?.generation_id as string;

  it("deletes inputs and results after the retention time; the generation stays, without its files", async () => {
    h = await makeHarness();
    const id = idOf(await queue(await pngDataUri(40, 30)));
    await waitFor(() => h?.store.get(id)?.status === "succeeded", 20_000, "done");
    const g = h.store.get(id);
    const result = h.files.resultPath(g?.resultFile as string);
    expect(existsSync(result) && existsSync(g?.input?.path as string)).toBe(true);

    h.store.update(id, { completed_at: Date.now() - 169 * 3_600_000 }); // a week and an hour ago
    await new Retention(h.store, h.files, { ttlHours: 168, capBytes: 1e12 }).sweep();
    expect(existsSync(result) || existsSync(g?.input?.path as string)).toBe(false);
    const view = (await h.app.inject({ url: `/api/ai/queue/${id}` })).json();
    expect(view.status).toBe("succeeded");
    expect(view.result_url).toBeNull();
    expect(view.prompt).toBe("p");
    expect((await h.app.inject({ url: `/results/${g?.resultFile}` })).statusCode).toBe(404);
  });

  it("evicts the oldest finished generations' files beyond the cap; 507 while nothing can be freed", async () => {
    // 1 MiB cap; each 600×600 noise input takes about 1.1 MB
    h = await makeHarness({ config: { storageCapMb: 1 }, command: fakeEngine({ FAKE_STEP_MS: "50" }) });
    const a = idOf(await queue(await noisePngDataUri(1)));
    await waitFor(() => h?.store.get(a)?.status === "succeeded", 20_000, "a");
    const aInput = h.store.get(a)?.input?.path as string;

    // Over the cap: a is the oldest finished, so its files go and b is taken.
    const bRes = await queue(await noisePngDataUri(2), { num_inference_steps: 50 });
    expect(bRes.statusCode, bRes.body).toBe(200);
    const b = idOf(bRes);
    expect(existsSync(aInput)).toBe(false);
    expect(h.store.get(a)?.expiredAt).not.toBeNull();
    expect(h.store.get(a)?.status).toBe("succeeded");

    // b is processing and holds the only big file: nothing can be freed.
    const full = await queue(await noisePngDataUri(3));
    expect(full.statusCode).toBe(507);
    expect(full.headers["retry-after"]).toBeDefined();
    expect(full.json().error.type).toBe("storage_full");
    expect(full.json().error.detail).toMatch(
      /^storage is full: input and result files take 1\.\d MB and the cap is 1\.0 MB \(KONTEXT_STORAGE_CAP_MB\)/,
    );
    expect(h.store.get(b)?.status).toBe("processing"); // the running job is untouched

    // Once b is finished its files may go, and submissions are taken again.
    await h.app.inject({ method: "DELETE", url: `/api/ai/queue/${b}` });
    await waitFor(() => h?.store.get(b)?.status === "cancelled", 20_000, "b cancelled");
    const again = await queue(await noisePngDataUri(3));
    expect(again.statusCode, again.body).toBe(200);
    await waitFor(() => h?.store.get(idOf(again))?.status === "succeeded", 20_000, "c");
  });

  it("answers 507 when the disk is full, and fails a job whose result cannot be stored, leaving no partial file", async () => {
    let full = false;
    class FullDisk extends FileStore {
      protected override async writeFileAtomic(file: string, data: Buffer): Promise<void> {
        if (full)
          throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
        return super.writeFileAtomic(file, data);
      }
    }
    h = await makeHarness({ files: (dir) => new FullDisk(dir) });
    full = true;
    const refused = await queue(await pngDataUri(41, 31));
    expect(refused.statusCode).toBe(507);
    expect(refused.json().error.detail).toMatch(/^storage is full: the disk holding .* has no space left$/);

    full = false;
    const ok = await queue(await pngDataUri(42, 32), { num_inference_steps: 50 });
    expect(ok.statusCode).toBe(200);
    const id = idOf(ok);
    await waitFor(() => h?.store.get(id)?.status === "processing", 20_000, "running");
    full = true; // the disk fills while it runs
    await waitFor(() => h?.store.get(id)?.status === "failed", 20_000, "failed");
    const g = (await h.app.inject({ url: `/api/ai/queue/${id}` })).json();
    expect(g.error_code).toBe("storage_full");
    expect(g.error_message).toMatch(/^storing the result failed: storage is full/);
    expect(filesUnder(h.dataDir).filter((f) => f.endsWith(".part"))).toEqual([]);
    expect(readdirSync(path.join(h.dataDir, "tmp"))).toEqual(["decoded"]); // no job files left
  });

  it("removes half-written files a crash left behind, at start", async () => {
    h = await makeHarness();
    const id = idOf(await queue(await pngDataUri(43, 33)));
    await waitFor(() => h?.store.get(id)?.status === "succeeded", 20_000, "done");
    const dir = h.dataDir;
    await h.close(true);
    const { writeFileSync } = await import("node:fs");
    const stray = path.join(dir, "results", "x.webp.123.4.part");
    writeFileSync(stray, "half");
    const files = new FileStore(dir);
    expect(existsSync(stray)).toBe(false);
    expect(files.usageBytes()).toBeGreaterThan(0);
    h = await makeHarness({ dataDir: dir });
    expect((await h.app.inject({ url: `/api/ai/queue/${id}` })).json().status).toBe("succeeded");
  });
});
