// Scaled out for real: a redis-server, two gateways and two workers as separate processes
// (KONTEXT_ROLE), workers running the real engine on the tiny model, files on a shared path.
// Events cross gateways, a Redis restart loses no accepted job, and a worker killed mid-job
// (with its engine, as a machine dying) has its job finished by the other worker. Then the same
// with files in an S3-compatible bucket (moto's server) instead of a shared path.
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Cluster, generation, type Proc, submit, until } from "./cluster.js";
import { parseSse, pngDataUri, readUntil } from "./helpers.js";
import { type RedisServer, startRedis } from "./redis.js";
import { S3_CREDENTIALS, type S3Server, startS3 } from "./s3.js";

describe("scale-out on Redis + BullMQ (real processes, real engine on the tiny model)", () => {
  let redis: RedisServer;
  let cluster: Cluster;
  let gwA: Proc;
  let gwB: Proc;
  let workers: Proc[];
  let image: string;
  const body = () => ({ input_image: image, prompt: "make it blue", num_inference_steps: 4 });
  const allDone = async (ids: string[], timeoutMs: number) => {
    const final = new Map<string, string>();
    await until(
      async () => {
        for (const id of ids) {
          if (final.has(id)) continue;
          const g = await generation(gwA, id);
          if (["succeeded", "failed", "cancelled"].includes(g.status)) final.set(id, g.status);
        }
        return final.size === ids.length;
      },
      timeoutMs,
      `${ids.length} generations to finish`,
    );
    return ids.map((id) => final.get(id));
  };

  beforeAll(async () => {
    redis = await startRedis();
    // Two engine threads: once a worker is killed, the one left has both cores to itself.
    cluster = new Cluster({
      redisUrl: redis.url,
      python: inject("python"),
      modelDir: inject("tinyModelDir"),
      engineThreads: 2,
    });
    [gwA, gwB] = await Promise.all([cluster.gateway(), cluster.gateway()]);
    workers = [await cluster.worker(gwA as Proc), await cluster.worker(gwA as Proc)];
    image = await pngDataUri(64, 48);
  }, 240_000);
  afterAll(async () => {
    await cluster?.stop();
    await redis?.stop();
  });

  it("2 gateways: SSE on one, the job submitted on the other: every event arrives, in order; replay on either", async () => {
    const completedOnB = fetch(`${gwB.url}/api/events`).then(async (res) => {
      const text = await readUntil(
        res.body,
        (t) => t.includes("media_generation_completed"),
        "completed on B",
      );
      return parseSse(text);
    });
    await new Promise((r) => setTimeout(r, 300)); // the /api/events stream is open
    const id = await submit(gwA, body());
    const res = await fetch(`${gwB.url}/api/ai/queue/${id}/events`);
    const events = parseSse(await res.text()); // closes after the final event
    expect(events.map((e) => e.event)).toEqual([
      "media_generation_queued",
      "media_generation_started",
      ...Array(4).fill("media_generation_progress"),
      "media_generation_completed",
    ]);
    const ids = events.map((e) => Number(e.id));
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(events.at(-1)?.data).toMatchObject({ status: "succeeded", generation_id: id });
    const url = (events.at(-1)?.data as { url?: string } | undefined)?.url ?? "";
    expect(url.startsWith(gwB.url)).toBe(true);
    // The result file is on the shared path: either gateway serves it.
    for (const gw of [gwA, gwB]) {
      const file = await fetch(url.replace(gwB.url, gw.url));
      expect(file.status).toBe(200);
      expect(file.headers.get("content-type")).toBe("image/webp");
    }
    // Last-Event-ID replay on the other gateway: what followed the second event.
    const again = await fetch(`${gwA.url}/api/ai/queue/${id}/events`, {
      headers: { "last-event-id": String(ids[1]) },
    });
    expect(parseSse(await again.text()).map((e) => Number(e.id))).toEqual(ids.slice(2));
    const announced = (await completedOnB).find((e) => e.event === "media_generation_completed");
    expect(announced?.data).toMatchObject({ generation_id: id, status: "succeeded" });
  }, 120_000);

  it("Redis restarted while jobs are queued: gateways and workers reconnect, and every job completes", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await submit(i % 2 ? gwB : gwA, body()));
    await until(
      async () => (await generation(gwA, ids[0] as string)).status !== "queued",
      60_000,
      "a job started",
    );
    await redis.restart(1000);
    expect(await allDone(ids, 180_000)).toEqual(Array(4).fill("succeeded"));
    await until(async () => (await fetch(`${gwB.url}/healthz`)).status === 200, 30_000, "gateway B healthy");
  }, 240_000);

  it("1 gateway + 2 workers, 20 jobs, one worker killed mid-job: 20/20 succeed", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await submit(gwA, body()));
    // Wait until the first worker is mid-job (step ≥ 1 on its engine), then kill it and its engine.
    const victim = workers[0] as Proc;
    let killedJob = "";
    await until(
      async () => {
        const h = (await (await fetch(`${gwA.url}/healthz`)).json()) as {
          engines: Array<{ device: string; generation_id: string | null }>;
        };
        const mine = h.engines.find((e) => e.device.endsWith(`:${victim.proc.pid}`) && e.generation_id);
        if (!mine?.generation_id) return false;
        const g = await generation(gwA, mine.generation_id); // fresh, unlike the 2 s heartbeat
        if (g.status !== "processing" || g.step < 1) return false;
        killedJob = mine.generation_id;
        return true;
      },
      120_000,
      "the first worker mid-job",
    );
    cluster.kill(victim);
    expect(await allDone(ids, 420_000)).toEqual(Array(20).fill("succeeded"));
    const rerun = await generation(gwA, killedJob);
    expect(rerun.attempts).toBe(2); // it ran again, on the other worker
  }, 480_000);
});

describe("scale-out with files in an S3-compatible bucket (real processes, real engine on the tiny model)", () => {
  let redis: RedisServer;
  let s3: S3Server;
  let cluster: Cluster;
  beforeAll(async () => {
    [redis, s3] = await Promise.all([startRedis(), startS3()]);
    await s3.createBucket("kontext");
    cluster = new Cluster({
      redisUrl: redis.url,
      python: inject("python"),
      modelDir: inject("tinyModelDir"),
      engineThreads: 2,
      s3: { endpoint: s3.endpoint, bucket: "kontext", credentials: S3_CREDENTIALS },
    });
  }, 240_000);
  afterAll(async () => {
    await cluster?.stop();
    await s3?.stop();
    await redis?.stop();
  });

  it("a gateway and a worker sharing no path: the worker reads the input from the bucket, the gateway serves the result", async () => {
    const gw = await cluster.gateway();
    await cluster.worker(gw);
    const res = await fetch(`${gw.url}/api/ai/images/edit`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input_image: await pngDataUri(64, 48), prompt: "p", num_inference_steps: 4 }),
    });
    const json = (await res.json()) as { images: Array<{ url: string }> };
    expect(res.status, JSON.stringify(json)).toBe(200);
    const url = new URL(json.images[0]?.url as string);
    const served = await fetch(`${gw.url}${url.pathname}`);
    expect(served.status).toBe(200);
    const bytes = Buffer.from(await served.arrayBuffer());
    expect(bytes).toEqual(await s3.object("kontext", url.pathname.slice(1)));
    expect((await sharp(bytes).metadata()).format).toBe("webp");
  }, 300_000);

  it("a process whose bucket does not exist refuses to start, naming it", async () => {
    const bad = new Cluster({
      redisUrl: redis.url,
      python: inject("python"),
      modelDir: inject("tinyModelDir"),
      s3: { endpoint: s3.endpoint, bucket: "no-such-bucket", credentials: S3_CREDENTIALS },
    });
    try {
      await expect(bad.gateway()).rejects.toThrow("exited");
      const log = bad.procs[0]?.log.join("") ?? "";
      expect(log).toContain(`object store s3://no-such-bucket/ at ${s3.endpoint}: the bucket does not exist`);
      expect(bad.procs[0]?.proc.exitCode).toBe(1);
    } finally {
      await bad.stop();
    }
  }, 120_000);
});
