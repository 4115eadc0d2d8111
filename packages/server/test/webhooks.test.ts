// Webhooks against a real local receiver (an HTTP server on 127.0.0.1): Standard Webhooks
// signatures checked here with HMAC written out independently, the events filter, retries with
// backoff, a receiver that never answers (the job is not delayed), refused addresses. On both
// queue backends: SQLite (the outbox in the job store) and BullMQ on a real Redis (the outbox in
// Redis, where two gateways sending at once still deliver each message once).
import { createHmac } from "node:crypto";
import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AddressPolicy } from "../src/images/address.js";
import { RedisRecords } from "../src/jobs/redis-records.js";
import { connectRedis } from "../src/redis/connection.js";
import { RedisOutbox } from "../src/webhooks/outbox.js";
import { Webhooks } from "../src/webhooks/sender.js";
import { type BackendName, makeQueueHarness, type QueueHarness } from "./backends.js";
import { fakeEngine, makeHarness, pngDataUri, waitFor } from "./helpers.js";
import { type RedisServer, startRedis } from "./redis.js";

const SECRET_BYTES = Buffer.from("kontext-test-webhook-secret-32by");
const SECRET = `whsec_${SECRET_BYTES.toString("base64")}`;

interface Received {
  at: number;
  headers: IncomingMessage["headers"];
  body: string;
  json: { type: string; timestamp: string; data: Record<string, unknown> };
}

/** A receiver whose answer each test chooses. */
class Receiver {
  server!: Server;
  url = "";
  received: Received[] = [];
  answer: (r: Received, res: ServerResponse) => void = (_r, res) => res.writeHead(204).end();
  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const r = { at: Date.now(), headers: req.headers, body, json: JSON.parse(body) };
        this.received.push(r);
        this.answer(r, res);
      });
    });
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/** What a receiver does: recompute v1 = base64(HMAC-SHA256(secret, id.timestamp.body)). */
function signatureValid(r: Received): boolean {
  const id = String(r.headers["webhook-id"]);
  const ts = String(r.headers["webhook-timestamp"]);
  const want = createHmac("sha256", SECRET_BYTES).update(`${id}.${ts}.${r.body}`).digest("base64");
  return String(r.headers["webhook-signature"]).split(" ").includes(`v1,${want}`);
}

/** Polls an async condition. */
const until = (cond: () => Promise<boolean>, timeoutMs: number, what: string) =>
  waitFor(cond, timeoutMs, what);

let redis: RedisServer | null = null;
beforeAll(async () => {
  redis = await startRedis();
}, 180_000);
afterAll(async () => redis?.stop());

for (const backend of ["sqlite", "bullmq"] as BackendName[])
  describe(`webhooks on the ${backend} queue`, () => {
    let h: QueueHarness;
    let image: string;
    const rx = new Receiver();
    const statusOf = async (id: string) => (await h.queue.get(id))?.status;
    beforeAll(async () => {
      await rx.start();
      h = await makeQueueHarness(backend, redis?.url ?? null, {
        config: { webhookSecret: SECRET, fetchAllow: ["127.0.0.1"] },
        command: fakeEngine({ FAKE_STEP_MS: "20" }),
        webhookOptions: { retryDelaysMs: [100, 200, 300], timeoutMs: 500 },
      });
      image = await pngDataUri();
    });
    afterAll(async () => {
      await h?.close();
      await rx.stop();
    });
    afterEach(() => {
      rx.received = [];
      rx.answer = (_r, res) => res.writeHead(204).end();
    });

    const queue = async (extra: Record<string, unknown>) => {
      const res = await h.app.inject({
        method: "POST",
        url: "/api/ai/queue",
        payload: { input_image: image, prompt: "p", num_inference_steps: 4, ...extra },
      });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().generations[0].generation_id as string;
    };

    it("POSTs start, progress and completed, each signed per Standard Webhooks", async () => {
      const id = await queue({ webhook: rx.url, webhook_events_filter: ["start", "progress", "completed"] });
      await waitFor(
        () => rx.received.some((r) => r.json.type === "media_generation_completed"),
        20_000,
        "completed hook",
      );
      await waitFor(() => rx.received.length >= 6, 5_000, "every hook");
      const types = rx.received.map((r) => r.json.type);
      expect(types.filter((t) => t === "media_generation_started")).toHaveLength(1);
      expect(types.filter((t) => t === "media_generation_progress")).toHaveLength(4);
      for (const r of rx.received) {
        expect(signatureValid(r), r.body).toBe(true);
        expect(r.headers["content-type"]).toBe("application/json");
        expect(Math.abs(Number(r.headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(60);
        expect(r.json.data.generation_id).toBe(id);
        expect(r.json.data).not.toHaveProperty("preview");
      }
      expect(new Set(rx.received.map((r) => r.headers["webhook-id"])).size).toBe(rx.received.length);
      const done = rx.received.find((r) => r.json.type === "media_generation_completed") as Received;
      expect(done.json.data.status).toBe("succeeded");
      expect(String(done.json.data.url)).toMatch(/^http:\/\/localhost(:\d+)?\/results\/.+\.webp$/);
      // a tampered body does not verify
      expect(signatureValid({ ...done, body: done.body.replace("succeeded", "failed") })).toBe(false);
    });

    it("sends only completed by default", async () => {
      await queue({ webhook: rx.url });
      await waitFor(() => rx.received.length >= 1, 20_000, "completed hook");
      await new Promise((r) => setTimeout(r, 300));
      expect(rx.received.map((r) => r.json.type)).toEqual(["media_generation_completed"]);
    });

    it("delivers a text-to-image generation's events too (a queued body without input_image)", async () => {
      const res = await h.app.inject({
        method: "POST",
        url: "/api/ai/queue",
        payload: { prompt: "a fox", aspect_ratio: "16:9", num_inference_steps: 4, webhook: rx.url },
      });
      expect(res.statusCode, res.body).toBe(200);
      const id = res.json().generations[0].generation_id as string;
      await waitFor(() => rx.received.length >= 1, 20_000, "completed hook");
      const [done] = rx.received;
      expect(signatureValid(done as Received)).toBe(true);
      expect(done?.json).toMatchObject({
        type: "media_generation_completed",
        data: { generation_id: id, status: "succeeded", width: 96, height: 48 }, // the fake engine's 16:9
      });
    });

    it("retries a failing receiver with backoff, with the same webhook-id", async () => {
      let calls = 0;
      rx.answer = (_r, res) => res.writeHead(++calls <= 2 ? 503 : 200).end();
      const id = await queue({ webhook: rx.url });
      await waitFor(() => rx.received.length >= 3, 20_000, "third attempt");
      expect(new Set(rx.received.map((r) => r.headers["webhook-id"])).size).toBe(1);
      const [a, b, c] = rx.received.map((r) => r.at) as [number, number, number];
      expect(b - a).toBeGreaterThanOrEqual(90); // the retry schedule: 100 ms, then 200 ms
      expect(c - b).toBeGreaterThanOrEqual(190);
      for (const r of rx.received) expect(signatureValid(r)).toBe(true);
      await until(
        async () => (await h.outbox.deliveriesOf(id))[0]?.outcome === "delivered",
        5_000,
        "delivered",
      );
      expect((await h.outbox.deliveriesOf(id))[0]?.attempts).toBe(3);
    });

    it("never delays the job: a receiver that never answers is given up on, the job already done", async () => {
      rx.answer = () => undefined; // holds the connection and never answers
      const id = await queue({ webhook: rx.url, webhook_events_filter: ["start", "progress", "completed"] });
      await until(async () => (await statusOf(id)) === "succeeded", 20_000, "the job");
      await until(
        async () => (await h.outbox.deliveriesOf(id)).every((d) => d.outcome === "gave_up"),
        30_000,
        "every delivery given up",
      );
      const d = await h.outbox.deliveriesOf(id);
      expect(d).toHaveLength(6);
      expect(d[0]?.attempts).toBe(4); // the first try and 3 retries
      expect(d[0]?.last_error).toBe("timed out");
      // the job finished while its first webhook was still being retried
      expect((await h.queue.get(id))?.completedAt).toBeLessThan(Math.min(...d.map((x) => x.done_at ?? 0)));
    });

    it("refuses private addresses (as for input_image), bad URLs, and webhooks without a secret", async () => {
      const post = (webhook: unknown) =>
        h.app.inject({
          method: "POST",
          url: "/api/ai/queue",
          payload: { input_image: image, prompt: "p", webhook },
        });
      const priv = await post("http://10.1.2.3/hook");
      expect(priv.statusCode).toBe(400);
      expect(priv.json().error.detail).toBe(
        "webhook: http://10.1.2.3/hook resolves to 10.1.2.3, a private address; allow it with KONTEXT_FETCH_ALLOW",
      );
      const meta = await post("http://169.254.169.254/latest");
      expect(meta.json().error.detail).toMatch(/link-local \(cloud metadata\)/);
      const ftp = await post("ftp://example.com/x");
      expect(ftp.statusCode).toBe(400);
      expect(ftp.json().error.detail).toMatch(/^webhook: must be an absolute http\(s\) URL, got "ftp:/);
      const filter = await h.app.inject({
        method: "POST",
        url: "/api/ai/queue",
        payload: { input_image: image, prompt: "p", webhook: rx.url, webhook_events_filter: ["done"] },
      });
      expect(filter.statusCode).toBe(400);
      expect(filter.json().error.detail).toMatch(
        /^webhook_events_filter: must be a non-empty list of distinct values from start, progress, completed/,
      );

      // On SQLite either way: a second BullMQ harness would empty the Redis the first one uses.
      const noSecret = await makeHarness({ config: { fetchAllow: ["127.0.0.1"] } });
      try {
        const res = await noSecret.app.inject({
          method: "POST",
          url: "/api/ai/queue",
          payload: { input_image: image, prompt: "p", webhook: rx.url },
        });
        expect(res.statusCode).toBe(400);
        expect(res.json().error.detail).toMatch(/KONTEXT_WEBHOOK_SECRET/);
      } finally {
        await noSecret.close();
      }
    });

    if (backend === "bullmq")
      it("two gateways sending from one Redis deliver each message once", async () => {
        // A second gateway's sender on the same Redis, beside the harness's own.
        const conn = connectRedis(redis?.url as string, { kind: "gateway" });
        const other = new Webhooks(new RedisOutbox(new RedisRecords(conn), new EventEmitter(), 20), {
          secret: SECRET,
          policy: new AddressPolicy(["127.0.0.1"]),
        }).start();
        try {
          const ids = [
            await queue({ webhook: rx.url, webhook_events_filter: ["start", "progress", "completed"] }),
            await queue({ webhook: rx.url, webhook_events_filter: ["start", "progress", "completed"] }),
          ];
          await until(async () => rx.received.length >= 12, 20_000, "every hook");
          await new Promise((r) => setTimeout(r, 500)); // a duplicate would arrive meanwhile
          expect(rx.received).toHaveLength(12);
          expect(new Set(rx.received.map((r) => r.headers["webhook-id"])).size).toBe(12);
          for (const id of ids) {
            const d = await h.outbox.deliveriesOf(id);
            expect(d.map((x) => [x.outcome, x.attempts])).toEqual(Array(6).fill(["delivered", 1]));
          }
        } finally {
          other.stop();
          conn.disconnect();
        }
      });
  });
