// A worker (KONTEXT_ROLE=worker) has no HTTP API: its GET /metrics and GET /healthz come from a
// listener of its own on KONTEXT_METRICS_PORT (src/metrics-listener.ts). Scraped after a job ran
// on the worker, the job counter says so: in one process (compose() for a gateway and for a worker
// on one Redis, the fake engine), and with main.ts as a worker process on the real tiny engine.
// Loopback only; one Redis for the file.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Composition, compose } from "../src/compose.js";
import { defaultConfig } from "../src/config.js";
import { connectRedis } from "../src/redis/connection.js";
import { fakeEngine, freePort, pngDataUri, poll, type ServerProcess, startServer } from "./helpers.js";
import { type RedisServer, startRedis } from "./redis.js";

let redis: RedisServer;
const root = mkdtempSync(path.join(tmpdir(), "kontext-worker-metrics-"));
beforeAll(async () => {
  redis = await startRedis();
}, 180_000);
afterAll(async () => {
  await redis?.stop();
  rmSync(root, { recursive: true, force: true });
});

/** A gateway composed in this process on the Redis, its files on `shared`. */
async function gatewayOn(shared: string): Promise<Composition> {
  const flush = connectRedis(redis.url, { kind: "gateway" });
  await flush.flushall(); // each test starts from an empty Redis
  flush.disconnect();
  const gateway = await compose(
    defaultConfig({
      dataDir: mkdtempSync(path.join(root, "gw-")),
      redisUrl: redis.url,
      role: "gateway",
      sharedDir: shared,
    }),
    { remoteRefreshMs: 100, outboxPollMs: 100 },
  );
  await gateway.start();
  return gateway;
}

/** Submits one generation through the gateway and waits until it succeeded. */
async function runOne(gateway: Composition, steps: number): Promise<string> {
  const app = gateway.app;
  if (!app) throw new Error("the gateway has no app");
  const res = await app.inject({
    method: "POST",
    url: "/api/ai/queue",
    payload: { input_image: await pngDataUri(), prompt: "metrics", num_inference_steps: steps },
  });
  expect(res.statusCode, res.body).toBe(200);
  const id = res.json().generations[0].generation_id as string;
  await poll(
    async () => (await app.inject({ url: `/api/ai/queue/${id}` })).json().status as string,
    (status) => status === "succeeded",
    `generation ${id} to succeed on the worker`,
    { timeoutMs: 120_000, intervalMs: 100 },
  );
  return id;
}

const scrape = async (base: string, what: string) => {
  const res = await fetch(`${base}${what}`);
  return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
};

describe("a worker's metrics listener", () => {
  it("in one process: compose() gives a worker a listener; /metrics counts the job it ran", async () => {
    const shared = mkdtempSync(path.join(root, "shared-"));
    const gateway = await gatewayOn(shared);
    const port = await freePort();
    const worker = await compose(
      defaultConfig({
        dataDir: mkdtempSync(path.join(root, "worker-")),
        redisUrl: redis.url,
        role: "worker",
        sharedDir: shared,
        metricsPort: port,
        jobLockS: 2,
      }),
      { engineCommand: fakeEngine({ FAKE_STEP_MS: "1" }), workerName: "metrics-worker" },
    );
    const listener = worker.metricsListener;
    try {
      expect(worker.app).toBeNull(); // a worker serves no API
      expect(worker.worker).not.toBeNull();
      if (!listener) throw new Error("compose built no metrics listener for a worker");
      await worker.start();
      await new Promise<void>((r) => listener.listen(port, "127.0.0.1", r));
      const base = `http://127.0.0.1:${port}`;
      const health = await poll(
        () => scrape(base, "/healthz"),
        (h) => h.status === 200,
        "the worker's /healthz to answer 200 (its engine ready)",
        { timeoutMs: 60_000, intervalMs: 100 },
      );
      expect(JSON.parse(health.text)).toMatchObject({ status: "ok", state: "ready" });
      const before = await scrape(base, "/metrics");
      expect(before.text).not.toContain("kontext_generations_total{");

      await runOne(gateway, 4);
      const after = await scrape(base, "/metrics");
      expect(after.status).toBe(200);
      expect(after.type).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(after.text).toContain('kontext_generations_total{status="succeeded"} 1');
      expect(after.text).toContain('kontext_generation_duration_seconds_count{status="succeeded"} 1');
      expect(after.text).toMatch(/^kontext_engines\{state="idle"\} 1$/m);
      // only those two routes, and only to read
      expect((await scrape(base, "/api/ai/queue")).status).toBe(404);
      expect((await fetch(`${base}/metrics`, { method: "POST" })).status).toBe(405);

      // stopping: /healthz says so before the listener closes
      await worker.drain(0);
      expect((await scrape(base, "/healthz")).status).toBe(503);
    } finally {
      await worker.close();
      await gateway.close();
    }
    expect(listener?.listening).toBe(false);
  });

  it("as a process: main.ts with KONTEXT_ROLE=worker serves /metrics on KONTEXT_METRICS_PORT", async () => {
    const shared = mkdtempSync(path.join(root, "shared-"));
    const gateway = await gatewayOn(shared);
    const port = await freePort();
    let proc: ServerProcess | null = null;
    try {
      proc = startServer({
        dataDir: mkdtempSync(path.join(root, "worker-proc-")),
        port: 0, // a worker opens no API port
        env: {
          KONTEXT_ROLE: "worker",
          KONTEXT_REDIS_URL: redis.url,
          KONTEXT_SHARED_DIR: shared,
          KONTEXT_METRICS_PORT: String(port),
          KONTEXT_MODEL_DIR: inject("tinyModelDir"),
          KONTEXT_PYTHON: inject("python"),
          KONTEXT_DEVICES: "cpu",
          KONTEXT_JOB_LOCK_S: "3",
        },
      });
      const p = proc;
      const base = `http://127.0.0.1:${port}`;
      await poll(
        () => scrape(base, "/healthz"),
        (h) => h.status === 200,
        "the worker process's /healthz to answer 200",
        {
          timeoutMs: 120_000,
          intervalMs: 200,
          retryErrors: true,
          giveUpIf: () => (p.proc.exitCode !== null ? `the worker exited\n${p.log.join("")}` : null),
        },
      );
      await runOne(gateway, 4);
      const metrics = await scrape(base, "/metrics");
      expect(metrics.status).toBe(200);
      expect(metrics.text).toContain('kontext_generations_total{status="succeeded"} 1');
      expect(metrics.text).toContain("kontext_inference_duration_seconds_count 1");

      p.proc.kill("SIGTERM");
      expect(await p.exited).toBe(0);
    } finally {
      if (proc && proc.proc.exitCode === null) {
        proc.proc.kill("SIGKILL");
        await proc.exited;
      }
      await gateway.close();
    }
  });
});
