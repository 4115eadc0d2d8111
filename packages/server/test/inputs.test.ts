// Stored inputs (issue 11, items 2 and 3): a refused submission stores nothing and leaves
// nothing behind, on both queue backends; inputs no generation refers to are collected (at start
// and on the retention timer) without racing a submission that is about to use them; an input is
// kept as the bytes it was sent in (not decoded pixels) and decoded for the engine only when its
// generation runs, exactly as it was decoded before, into tmp/decoded/ where the next run on the
// same input finds it.
import { createHash } from "node:crypto";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { decodeInput } from "../src/images/codec.js";
import { ImageIngest } from "../src/images/ingest.js";
import { RedisRecords } from "../src/jobs/redis-records.js";
import { type EngineInput, engineInput } from "../src/jobs/run.js";
import { SqliteJobQueue } from "../src/jobs/sqlite-queue.js";
import { SqliteRecords } from "../src/jobs/sqlite-records.js";
import type { Generation } from "../src/jobs/types.js";
import { Metrics } from "../src/metrics.js";
import { connectRedis } from "../src/redis/connection.js";
import { withDefaults } from "../src/schema/flux-kontext-dev.js";
import { FileStore } from "../src/storage/files.js";
import { Retention } from "../src/storage/retention.js";
import { makeQueueHarness, type QueueHarness } from "./backends.js";
import { fakeEngine, type Harness, makeHarness, waitFor } from "./helpers.js";
import { type RedisServer, startRedis } from "./redis.js";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const dataUri = (b: Buffer, type = "png") => `data:image/${type};base64,${b.toString("base64")}`;
const flat = (w: number, h: number, r: number) =>
  sharp({ create: { width: w, height: h, channels: 3, background: { r, g: 90, b: 160 } } });

/** The input hashes stored under `root`/inputs (any file of an input). */
function storedHashes(root: string): Set<string> {
  const dir = path.join(root, "inputs");
  return new Set(
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => e.name.split(".")[0] as string),
  );
}
const inputBytes = (root: string) =>
  readdirSync(path.join(root, "inputs"), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .reduce((n, e) => n + statSync(path.join(e.parentPath, e.name)).size, 0);

/** Makes every file of an input look `ageMs` old (as if nothing had used it since). */
function age(root: string, hash: string, ageMs = 3_600_000): void {
  const dir = path.join(root, "inputs", hash.slice(0, 2));
  const t = new Date(Date.now() - ageMs);
  for (const name of readdirSync(dir)) if (name.startsWith(hash)) utimesSync(path.join(dir, name), t, t);
}

const ingestOptions = {
  maxPixels: 40_000_000,
  fetchAllow: [],
  timeoutMs: 1000,
  maxBytes: 64 * 1024 * 1024,
  maxRedirects: 0,
};

describe("refused submissions store nothing (SQLite)", () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });
  const queue = (input_image: string, extra: Record<string, unknown> = {}) =>
    (h as Harness).app.inject({
      method: "POST",
      url: "/api/ai/queue",
      payload: { input_image, prompt: "p", num_inference_steps: 4, ...extra },
    });

  it("nine refusals with KONTEXT_MAX_QUEUE=1 leave no file, and once the queue drains it accepts again", async () => {
    // A 1 MiB cap; each 400×400 input is 480 kB as pixels, a few hundred bytes as sent.
    h = await makeHarness({
      config: { maxQueue: 1, storageCapMb: 1 },
      command: fakeEngine({ FAKE_STEP_MS: "50" }),
    });
    const png = (r: number) => flat(400, 400, r).png().toBuffer();
    const running = await queue(dataUri(await png(1)), { num_inference_steps: 50 });
    await waitFor(() => h?.store.count("processing") === 1, 10_000, "running");
    const queued = await queue(dataUri(await png(2)), { num_inference_steps: 50 });
    expect([running.statusCode, queued.statusCode]).toEqual([200, 200]);
    const accepted = storedHashes(h.dataDir);
    expect(accepted.size).toBe(2);

    for (let i = 0; i < 9; i++) {
      const res = await queue(dataUri(await png(10 + i)));
      expect(res.statusCode, res.body).toBe(429);
      expect(res.headers["retry-after"]).toBeDefined();
    }
    expect(storedHashes(h.dataDir)).toEqual(accepted); // nothing of the nine is left

    for (const res of [running, queued])
      await h.app.inject({
        method: "DELETE",
        url: `/api/ai/queue/${res.json().generations[0].generation_id}`,
      });
    await waitFor(() => h?.store.count("cancelled") === 2, 10_000, "drained");
    const again = await queue(dataUri(await png(40)));
    expect(again.statusCode, again.body).toBe(200);
    const id = again.json().generations[0].generation_id as string;
    await waitFor(() => h?.store.get(id)?.status === "succeeded", 20_000, "the next one ran");

    const kept = storedHashes(h.dataDir);
    h.queue.stop(); // shutting down: 503, and nothing stored either
    const closing = await queue(dataUri(await png(30)));
    expect(closing.statusCode).toBe(503);
    expect(storedHashes(h.dataDir)).toEqual(kept);
  });

  it("removes what a submission stored when its generations cannot be written, unless someone else uses it", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "kontext-inputs-"));
    const files = new FileStore(root);
    const used = new Set<string>();
    files.referencesFrom({ inputsInUse: async (hashes) => new Set(hashes.filter((x) => used.has(x))) });
    const ingest = new ImageIngest(files, ingestOptions);
    const refuse = async () => {
      throw new Error("queue full");
    };
    const a = await flat(20, 20, 1).png().toBuffer();
    await expect(ingest.withInput(dataUri(a), refuse)).rejects.toThrow("queue full");
    expect(storedHashes(root).has(sha(a))).toBe(false);

    // Two submissions of one new image at once: the one refused leaves it to the other.
    const b = await flat(20, 20, 2).png().toBuffer();
    let release = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    const other = ingest.withInput(dataUri(b), async () => {
      await held;
      used.add(sha(b)); // its generation is written
    });
    await new Promise((r) => setTimeout(r, 50));
    await expect(ingest.withInput(dataUri(b), refuse)).rejects.toThrow("queue full");
    expect(storedHashes(root).has(sha(b))).toBe(true);
    release();
    await other;
    expect(storedHashes(root).has(sha(b))).toBe(true);

    // An input that was already stored is not this submission's to remove.
    await expect(ingest.withInput(dataUri(b), refuse)).rejects.toThrow("queue full");
    used.clear();
    await expect(ingest.withInput(dataUri(b), refuse)).rejects.toThrow("queue full");
    expect(storedHashes(root).has(sha(b))).toBe(true);
  });
});

describe("orphan inputs", () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it("collects, at start, inputs on disk no generation refers to (and earlier versions' raw ones)", async () => {
    h = await makeHarness({ command: fakeEngine({ FAKE_STEP_MS: "1" }) });
    const png = await flat(30, 20, 5).png().toBuffer();
    const res = await h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      payload: { input_image: dataUri(png), prompt: "p", num_inference_steps: 4 },
    });
    const id = res.json().generations[0].generation_id as string;
    await waitFor(() => h?.store.get(id)?.status === "succeeded", 20_000, "done");
    const dir = h.dataDir;
    await h.close(true);

    // What an earlier version's refused submissions left: an original and a raw RGB input.
    const files = new FileStore(dir);
    const orphan = await flat(50, 50, 6).png().toBuffer();
    await files.putInput(sha(orphan), orphan, { width: 50, height: 50, format: "png" });
    const legacy = "ab".repeat(32);
    mkdirSync(path.join(dir, "inputs", "ab"), { recursive: true });
    writeFileSync(path.join(dir, "inputs", "ab", `${legacy}.rgb`), Buffer.alloc(4 * 4 * 3));
    writeFileSync(path.join(dir, "inputs", "ab", `${legacy}.json`), JSON.stringify({ width: 4, height: 4 }));
    for (const hash of [sha(orphan), legacy, sha(png)]) age(dir, hash);

    h = await makeHarness({ dataDir: dir });
    await h.app.ready(); // the retention sweep starts with the server
    await waitFor(() => storedHashes(dir).size === 1, 10_000, "orphans collected");
    expect(storedHashes(dir)).toEqual(new Set([sha(png)])); // the generation's own input stays
    const result = statSync(h.files.resultPath(h.store.get(id)?.resultFile as string)).size;
    expect(h.files.usageBytes()).toBe(inputBytes(dir) + result); // the cap counts what is left
    const input = await h.app.inject({ url: `/api/history/${id}/input` });
    expect(input.rawPayload).toEqual(png);
  });

  it("leaves an input a submission is using, a fresh one, and one a generation refers to", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "kontext-orphans-"));
    const files = new FileStore(root);
    const referenced = new Set<string>();
    files.referencesFrom({ inputsInUse: async (hashes) => new Set(hashes.filter((x) => referenced.has(x))) });
    const put = async (r: number) => {
      const png = await flat(10, 10, r).png().toBuffer();
      await files.putInput(sha(png), png, { width: 10, height: 10, format: "png" });
      return sha(png);
    };
    const [pinned, fresh, used, orphan] = [await put(1), await put(2), await put(3), await put(4)];
    for (const hash of [pinned, used, orphan]) age(root, hash);
    referenced.add(used);
    const unpin = await files.pinInput(pinned); // an ingest between storing and inserting

    expect(await files.collectOrphanInputs(60_000)).toBe(1);
    expect(storedHashes(root)).toEqual(new Set([pinned, fresh, used]));

    // The ingest touches an input it finds: another process's collector then leaves it be.
    unpin();
    await files.touchInput(pinned);
    expect(await files.collectOrphanInputs(60_000)).toBe(0);
    age(root, pinned);
    expect(await files.collectOrphanInputs(60_000)).toBe(1);
    expect(storedHashes(root)).toEqual(new Set([fresh, used]));
  });

  it("retention does not remove an expired generation's input while a submission is about to reuse it", async () => {
    h = await makeHarness({ command: fakeEngine({ FAKE_STEP_MS: "1" }) });
    const png = await flat(30, 30, 7).png().toBuffer();
    const res = await h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      payload: { input_image: dataUri(png), prompt: "p", num_inference_steps: 4 },
    });
    const id = res.json().generations[0].generation_id as string;
    await waitFor(() => h?.store.get(id)?.status === "succeeded", 20_000, "done");
    h.store.update(id, { completed_at: Date.now() - 169 * 3_600_000 });
    const unpin = await h.files.pinInput(sha(png)); // an ingest found it and is about to insert
    await new Retention(h.store, h.files, { ttlHours: 168, capBytes: 1e12 }).sweep();
    expect(h.store.get(id)?.expiredAt).not.toBeNull(); // the result went…
    expect(storedHashes(h.dataDir).has(sha(png))).toBe(true); // …the input stays
    unpin();
  });
});

describe("inputs are kept as sent", () => {
  let h: Harness | undefined;
  afterAll(async () => h?.close());

  it("a 6300×6300 PNG and a JPEG take at most 1.2× their size on disk; the engine still gets their pixels", async () => {
    h = await makeHarness({ command: fakeEngine({ FAKE_STEP_MS: "1" }) });
    const png = await flat(6300, 6300, 30).png().toBuffer();
    const jpeg = await sharp({
      create: {
        width: 2000,
        height: 1500,
        channels: 3,
        background: "#808080",
        noise: { type: "gaussian", mean: 128, sigma: 12 },
      },
    })
      .jpeg({ quality: 85 })
      .toBuffer();
    for (const [bytes, type, w, h0] of [
      [png, "png", 6300, 6300],
      [jpeg, "jpeg", 2000, 1500],
    ] as const) {
      const before = inputBytes(h.dataDir);
      const res = await h.app.inject({
        method: "POST",
        url: "/api/ai/queue",
        payload: { input_image: dataUri(bytes, type), prompt: "p", num_inference_steps: 4 },
      });
      expect(res.statusCode, res.body).toBe(200);
      const stored = inputBytes(h.dataDir) - before;
      expect(stored).toBeLessThanOrEqual(1.2 * bytes.length);
      const id = res.json().generations[0].generation_id as string;
      // The fake engine checks the file it is handed holds width × height × 3 bytes.
      await waitFor(() => ["succeeded", "failed"].includes(h?.store.get(id)?.status ?? ""), 30_000, "ran");
      expect(h.store.get(id)).toMatchObject({ status: "succeeded", input: { width: w, height: h0 } });
      expect(readdirSync(path.join(h.dataDir, "tmp"))).toEqual(["decoded"]); // the job's own files are gone with it
    }
  });
});

/** A queue whose one engine records the job and the input file it is handed. */
function recordingQueue(root: string) {
  const files = new FileStore(root);
  const store = new SqliteRecords(":memory:");
  const seen: Array<{
    job: { job_id: string; input: { path: string; width: number; height: number } };
    rgb: Buffer;
  }> = [];
  let idle = true;
  const engines = {
    status: () => [{ state: idle ? "idle" : "busy" }] as never,
    run: (job: never) => {
      const j = job as (typeof seen)[number]["job"];
      seen.push({ job: j, rgb: readFileSync(j.input.path) });
      return true;
    },
    cancel: () => {},
    on: () => engines,
    off: () => engines,
    stop: async () => {},
  };
  const queue = new SqliteJobQueue(store, files, engines, new Metrics(), { maxQueue: 100 });
  const ingest = new ImageIngest(files, ingestOptions);
  const params = withDefaults({ input_image: "x", prompt: "p" } as never);
  const submit = (bytes: Buffer) =>
    ingest.withInput(dataUri(bytes), (input) => queue.submit(params, input, 1));
  return {
    files,
    store,
    queue,
    seen,
    submit,
    setIdle: (v: boolean) => {
      idle = v;
    },
  };
}

describe("decoded for the engine when the generation runs", () => {
  it("hands the engine exactly the pixels decodeInput gives (orientation, CMYK, 16-bit, palette, alpha, animation, > 8192)", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "kontext-decode-"));
    const q = recordingQueue(root);
    const base = () =>
      sharp({
        create: { width: 48, height: 32, channels: 4, background: { r: 200, g: 40, b: 90, alpha: 0.6 } },
      });
    const frames = await sharp(
      await sharp({ create: { width: 8, height: 16, channels: 3, background: "#ff0000" } })
        .composite([{ input: await flat(8, 8, 0).png().toBuffer(), top: 8, left: 0 }])
        .raw()
        .toBuffer(),
      { raw: { width: 8, height: 16, channels: 3, pageHeight: 8 } as never },
    )
      .gif()
      .toBuffer();
    const cases: Array<[string, Buffer]> = [
      ["exif orientation 6", await base().flatten().jpeg().withMetadata({ orientation: 6 }).toBuffer()],
      ["exif orientation 3", await base().flatten().jpeg().withMetadata({ orientation: 3 }).toBuffer()],
      ["cmyk jpeg", await base().flatten().toColourspace("cmyk").jpeg().toBuffer()],
      ["16-bit png", await base().toColourspace("rgb16").png().toBuffer()],
      ["palette png", await base().png({ palette: true }).toBuffer()],
      ["alpha png", await base().png().toBuffer()],
      ["alpha webp", await base().webp().toBuffer()],
      ["animated gif", frames],
      ["9000×120 png", await flat(9000, 120, 9).png().toBuffer()],
    ];
    for (const [name, bytes] of cases) {
      const [g] = await q.submit(bytes);
      await waitFor(() => q.seen.some((s) => s.job.job_id === g?.id), 10_000, name);
      const seen = q.seen.find((s) => s.job.job_id === g?.id) as (typeof q.seen)[number];
      const want = await decodeInput(bytes, 40_000_000); // what inputs/ held before, byte for byte
      expect(seen.rgb.equals(want.rgb), name).toBe(true);
      expect([seen.job.input.width, seen.job.input.height], name).toEqual([want.width, want.height]);
      expect([g?.input?.width, g?.input?.height], `${name}: size stored at submission`).toEqual([
        want.width,
        want.height,
      ]);
      expect(path.dirname(seen.job.input.path), name).toBe(path.join(root, "tmp", "decoded"));
    }
    await q.queue.settled();
  });

  it("decodes an input once for runs in a row on it, and lets the copy go when the input is deleted", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "kontext-decoded-"));
    const q = recordingQueue(root);
    q.setIdle(false); // nothing dispatched: the runs' decodes are called here
    const png = await flat(640, 480, 5).png().toBuffer();
    const [a] = await q.submit(png);
    const [b] = await q.submit(png);
    const first = (await engineInput(q.files, a as Generation)) as EngineInput;
    const second = (await engineInput(q.files, b as Generation)) as EngineInput;
    expect(second.path).toBe(first.path); // the second run reads the copy the first decoded
    expect(readFileSync(second.path).equals((await decodeInput(png, 40_000_000)).rgb)).toBe(true);
    expect(readdirSync(path.join(root, "tmp", "decoded"))).toHaveLength(1);
    first.release();
    await q.files.removeInput(sha(png));
    expect(readFileSync(second.path).length).toBe(640 * 480 * 3); // still being read by a run
    second.release();
    await waitFor(() => readdirSync(path.join(root, "tmp", "decoded")).length === 0, 5_000, "copy removed");
  });

  it("claims a generation only for an idle engine; fails one whose input is gone, without naming server paths", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "kontext-missing-"));
    const q = recordingQueue(root);
    q.setIdle(false);
    const png = await flat(16, 16, 3).png().toBuffer();
    const [g] = await q.submit(png);
    await new Promise((r) => setTimeout(r, 50));
    expect(q.store.get(g?.id as string)?.status).toBe("queued"); // no engine idle: not claimed
    await q.files.removeInput(sha(png));
    q.setIdle(true);
    q.queue.dispatch();
    await waitFor(() => q.store.get(g?.id as string)?.status === "failed", 10_000, "failed");
    const failed = q.store.get(g?.id as string);
    expect(failed?.errorCode).toBe("input_missing");
    expect(failed?.errorMessage).not.toContain(root);
    expect(q.seen).toEqual([]);
  });
});

describe("the same rules on the Redis backend", () => {
  let redis: RedisServer;
  let h: QueueHarness | null = null;
  beforeAll(async () => {
    redis = await startRedis();
  }, 180_000);
  afterEach(async () => {
    await h?.close();
    h = null;
  });
  afterAll(async () => redis?.stop());

  it("a refused submission leaves nothing stored; orphans go, inputs Redis's generations use stay", async () => {
    h = await makeQueueHarness("bullmq", redis.url, {
      config: { maxQueue: 1 },
      command: fakeEngine({ FAKE_STEP_MS: "50" }),
    });
    const post = (bytes: Buffer) =>
      (h as QueueHarness).app.inject({
        method: "POST",
        url: "/api/ai/queue",
        payload: { input_image: dataUri(bytes), prompt: "p", num_inference_steps: 50 },
      });
    const png = (r: number) => flat(64, 64, r).png().toBuffer();
    const first = await post(await png(1));
    const id = first.json().generations[0].generation_id as string;
    await waitFor(() => h?.engine.status().some((s) => s.state === "busy") ?? false, 20_000, "running");
    expect((await post(await png(2))).statusCode).toBe(200);
    const root = h.files.root;
    const accepted = storedHashes(root);
    expect(accepted.size).toBe(2);
    for (let i = 0; i < 3; i++) expect((await post(await png(10 + i))).statusCode).toBe(429);
    expect(storedHashes(root)).toEqual(accepted);

    // An orphan (an old refusal's leftover) is collected; the generations' inputs, as old, stay.
    const orphan = await png(20);
    await h.files.putInput(sha(orphan), orphan, { width: 64, height: 64, format: "png" });
    for (const hash of [...accepted, sha(orphan)]) age(root, hash);
    await new Retention(new SqliteRecords(":memory:"), h.files, { ttlHours: 168, capBytes: 1e12 }).sweep();
    expect(storedHashes(root)).toEqual(accepted);

    // Generations written before the input set existed are found by scanning them once.
    const r = connectRedis(redis.url, { kind: "gateway" });
    try {
      await r.del("kontext:inputs", "kontext:inputs:indexed");
      const store = new RedisRecords(r);
      expect(await store.inputsInUse([...accepted, sha(orphan)])).toEqual(accepted);
    } finally {
      r.disconnect();
    }
    await h.queue.cancel(id);
  });
});
