// Files in an S3-compatible object store (KONTEXT_S3_BUCKET) instead of a shared path: a local S3
// server (moto, test/s3.ts) and a real Redis. The file store's contract across machines (what one
// writes, another reads; local copies of inputs bounded), the API flows on BullMQ with the bucket,
// and a store that cannot be reached (503, nothing queued).
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FileStore } from "../src/storage/files.js";
import { ObjectStore } from "../src/storage/objects.js";
import { makeQueueHarness, type QueueHarness } from "./backends.js";
import { defineFlows } from "./flows.js";
import { fakeEngine, pngDataUri } from "./helpers.js";
import { type RedisServer, startRedis } from "./redis.js";
import { S3_CREDENTIALS, type S3Server, startS3 } from "./s3.js";

const BUCKET = "kontext-test";
const PREFIX = "deploy-a/";

let s3: S3Server;
let redis: RedisServer;
beforeAll(async () => {
  Object.assign(process.env, S3_CREDENTIALS);
  [s3, redis] = await Promise.all([startS3(), startRedis()]);
  await s3.createBucket(BUCKET);
}, 180_000);
afterAll(async () => {
  await s3?.stop();
  await redis?.stop();
});

const objectStore = (bucket = BUCKET, endpoint = s3.endpoint) =>
  new ObjectStore({ bucket, endpoint, region: "us-east-1", prefix: PREFIX });
/** A machine's file store on the bucket, with a data dir of its own. */
const machine = (opts: { inputCacheBytes?: number } = {}) =>
  new FileStore(mkdtempSync(path.join(tmpdir(), "kontext-s3-machine-")), { objects: objectStore(), ...opts });
const hashOf = (n: number) => n.toString(16).padStart(64, "0");
const localFiles = (dir: string) =>
  readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;

describe("file store on an object store", () => {
  it("an input stored by a gateway is found by a worker, with a local copy the engine can read", async () => {
    const gateway = machine();
    const worker = machine();
    const png = Buffer.alloc(40, 7); // the store keeps the original bytes as they are
    await gateway.putInput(hashOf(1), png, { width: 4, height: 3, format: "png" });
    expect(await s3.object(BUCKET, `${PREFIX}inputs/00/${hashOf(1)}.png`)).toEqual(png);

    const found = await worker.findInput(hashOf(1));
    expect(found).toMatchObject({ hash: hashOf(1), width: 4, height: 3, format: "png", bytes: 40 });
    expect(found?.path.startsWith(worker.root)).toBe(true);
    expect(await worker.readInput(found as NonNullable<typeof found>)).toEqual({ bytes: png, format: "png" });
    expect(await worker.findInput(hashOf(2))).toBeNull();
    expect(worker.location).toBe(`s3://${BUCKET}/${PREFIX} at ${s3.endpoint}`);
  });

  it("puts an input back in the bucket when it is used again after a lifecycle rule expired it", async () => {
    const gateway = machine();
    const jpeg = Buffer.alloc(30, 9);
    await gateway.putInput(hashOf(5), jpeg, { width: 2, height: 2, format: "jpeg" });
    for (const ext of ["jpg", "json"]) await s3.expire(BUCKET, `${PREFIX}inputs/00/${hashOf(5)}.${ext}`);
    expect(await machine().findInput(hashOf(5))).toBeNull(); // another machine cannot find it

    expect(await gateway.findInput(hashOf(5))).not.toBeNull(); // the gateway still has its copy…
    expect(await s3.object(BUCKET, `${PREFIX}inputs/00/${hashOf(5)}.jpg`)).toEqual(jpeg); // …and puts it back
    const worker = machine();
    const found = await worker.findInput(hashOf(5));
    expect((await worker.readInput(found as NonNullable<typeof found>))?.bytes).toEqual(jpeg);
  });

  it("a result stored by a worker is served by any gateway; removing it removes the object", async () => {
    const worker = machine();
    const gateway = machine();
    const name = worker.resultName("gen_1", "webp");
    const bytes = Buffer.from("RIFF....WEBP");
    await worker.putResult(name, bytes);
    expect(localFiles(path.join(worker.root, "results"))).toBe(0); // only in the bucket
    expect(await gateway.readResult(name)).toEqual(bytes);
    expect(await s3.object(BUCKET, `${PREFIX}results/${name}`)).toEqual(bytes);

    await gateway.removeResult(name);
    expect(await worker.readResult(name)).toBeNull();
    expect(await s3.object(BUCKET, `${PREFIX}results/${name}`)).toBeNull();
    expect(await gateway.readResult("../../etc/passwd")).toBeNull();
  });

  it("keeps local copies of inputs within their limit, least recently used out first, fetched again when needed", async () => {
    const png = (n: number) => Buffer.alloc(300, n); // the cache counts the stored (original) bytes
    const worker = machine({ inputCacheBytes: 2 * 300 });
    const gateway = machine();
    for (const n of [1, 2, 3])
      await gateway.putInput(hashOf(n), png(n), { width: 10, height: 10, format: "png" });
    await worker.findInput(hashOf(1));
    await worker.findInput(hashOf(2));
    await worker.findInput(hashOf(1)); // 1 is now more recent than 2
    await worker.findInput(hashOf(3)); // over the limit: 2 goes
    const inputs = path.join(worker.root, "inputs");
    expect(localFiles(inputs)).toBe(4); // two inputs, image and meta each
    const again = await worker.findInput(hashOf(2));
    expect((await worker.readInput(again as NonNullable<typeof again>))?.bytes).toEqual(png(2));
    expect(localFiles(inputs)).toBe(4);

    await gateway.removeInput(hashOf(2));
    expect(await s3.object(BUCKET, `${PREFIX}inputs/00/${hashOf(2)}.png`)).toBeNull();
    expect(await machine().findInput(hashOf(2))).toBeNull();
  });

  it("says at start when the bucket is missing or the store cannot be reached", async () => {
    await expect(objectStore("no-such-bucket").check()).rejects.toThrow(
      `object store s3://no-such-bucket/${PREFIX} at ${s3.endpoint}: the bucket does not exist`,
    );
    await expect(objectStore(BUCKET, "http://127.0.0.1:9").check()).rejects.toThrow(
      `object store s3://${BUCKET}/${PREFIX} at http://127.0.0.1:9`,
    );
    await expect(objectStore().check()).resolves.toBeUndefined();
  });
});

const bullmqOnS3 = (command = fakeEngine({ FAKE_STEP_MS: "5" })) =>
  makeQueueHarness("bullmq", redis.url, {
    command,
    files: (dataDir) => new FileStore(dataDir, { objects: objectStore() }),
  });

defineFlows("flows on the bullmq queue with files in an object store (fake engine)", {
  make: () => bullmqOnS3(),
  quickSteps: 4,
  longSteps: 50,
  realSizes: false,
});

describe("the API with files in an object store", () => {
  let h: QueueHarness | null = null;
  afterEach(async () => {
    await h?.close();
    h = null;
  });

  it("stores results in the bucket, serves them at their URL, keeps no image bytes in Redis", async () => {
    h = await bullmqOnS3();
    const res = await h.app.inject({
      method: "POST",
      url: "/api/ai/images/edit",
      payload: { input_image: await pngDataUri(40, 30), prompt: "p", num_inference_steps: 4 },
    });
    expect(res.statusCode).toBe(200);
    const url = new URL(res.json().images[0].url as string);
    const name = url.pathname.slice("/results/".length);
    const served = await h.app.inject({ url: url.pathname });
    expect(served.statusCode).toBe(200);
    expect(served.rawPayload).toEqual(await s3.object(BUCKET, `${PREFIX}results/${name}`));

    // Job data in Redis carries ids and parameters, never image bytes.
    const client = (await import("ioredis")).Redis;
    const r = new client(redis.url);
    try {
      let largest = 0;
      for (const key of await r.keys("*")) {
        const type = await r.type(key);
        if (type === "string") largest = Math.max(largest, (await r.strlen(key)) ?? 0);
        if (type === "hash")
          for (const v of Object.values(await r.hgetall(key))) largest = Math.max(largest, v.length);
      }
      expect(largest).toBeLessThan(40 * 30 * 3);
    } finally {
      r.disconnect();
    }
  });

  it("answers 503 naming the store when it cannot be reached, and queues nothing", async () => {
    const down = new FileStore(mkdtempSync(path.join(tmpdir(), "kontext-s3-down-")), {
      objects: objectStore(BUCKET, "http://127.0.0.1:9"),
    });
    await expect(
      down.putInput(hashOf(9), Buffer.alloc(3), { width: 1, height: 1, format: "png" }),
    ).rejects.toMatchObject({
      status: 503,
      code: "storage_unavailable",
    });
    // The same through the API: a harness whose store is down.
    h = await makeQueueHarness("bullmq", redis.url, {
      files: (dataDir) => new FileStore(dataDir, { objects: objectStore(BUCKET, "http://127.0.0.1:9") }),
    });
    const res = await h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      payload: { input_image: await pngDataUri(41, 30), prompt: "p", num_inference_steps: 4 },
    });
    expect(res.statusCode).toBe(503);
    expect(res.json().error.detail).toContain(
      `the file store (s3://${BUCKET}/${PREFIX} at http://127.0.0.1:9)`,
    );
    expect(await h.queue.depth()).toEqual({ queued: 0, processing: 0 });
    expect(await h.queue.list({ statuses: ["queued", "processing"], limit: 10 })).toEqual([]);
  });
});
