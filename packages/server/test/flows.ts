// The API flows, written once and run against the fake engine (flows.test.ts) and the real
// engine on the tiny model (e2e.test.ts).
import type { AddressInfo } from "node:net";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, maskDataUri, parseSse, pngDataUri, poll as pollUntil, readUntil } from "./helpers.js";

export interface FlowOptions {
  make: () => Promise<FlowHarness>;
  /** steps for a quick job, and for one long enough to cancel while it runs */
  quickSteps: number;
  longSteps: number;
  /** whether output sizes follow the real resolution buckets (~1 MP) */
  realSizes: boolean;
}

type Sse = ReturnType<typeof parseSse>;
/** The flows need only the app (either queue backend: see queue-conformance.test.ts). */
type FlowHarness = Pick<Harness, "app" | "close">;

export function defineFlows(name: string, opts: FlowOptions): void {
  describe(name, () => {
    let h: FlowHarness;
    let image: string;
    let base: string;
    beforeAll(async () => {
      h = await opts.make();
      await h.app.listen({ host: "127.0.0.1", port: 0 });
      base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
      image = await pngDataUri(64, 48);
    });
    afterAll(async () => h?.close());

    const body = (extra: Record<string, unknown> = {}) => ({
      input_image: image,
      prompt: "make the square blue",
      num_inference_steps: opts.quickSteps,
      ...extra,
    });
    type GenView = Record<string, unknown> & { status: string; step: number; seed: number };
    const poll = (id: string, until: (g: GenView) => boolean, timeoutMs = 120_000): Promise<GenView> =>
      pollUntil(
        async () => (await h.app.inject({ url: `/api/ai/queue/${id}` })).json() as GenView,
        until,
        `generation ${id}`,
        { timeoutMs, intervalMs: 50 },
      );

    it("sync edit with response_format url", async () => {
      const res = await h.app.inject({
        method: "POST",
        url: "/api/ai/images/edit",
        payload: body({ seed: 7 }),
      });
      expect(res.statusCode, res.body).toBe(200);
      const out = res.json();
      expect(out.model).toBe("flux-kontext-dev");
      expect(typeof out.created).toBe("number");
      expect(out.seed).toBe(7);
      expect(out.images).toHaveLength(1);
      expect(out.images[0].url).toMatch(/^http:\/\/localhost(:\d+)?\/results\/[\w-]+\.webp$/);
      expect(out.timings).toEqual({
        queue: expect.any(Number),
        inference: expect.any(Number),
        encode: expect.any(Number),
      });
      if (opts.realSizes) expect([out.width, out.height]).toEqual([1184, 880]); // 64×48 (4:3) → the closest trained bucket
      const file = await h.app.inject({ url: new URL(out.images[0].url).pathname });
      expect(file.statusCode).toBe(200);
      expect(file.headers["content-type"]).toBe("image/webp");
      const meta = await sharp(file.rawPayload).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(["webp", out.width, out.height]);
    });

    it("sync edit with response_format b64_json (png)", async () => {
      const res = await h.app.inject({
        method: "POST",
        url: "/api/ai/images/edit",
        payload: body({ response_format: "b64_json", output_format: "png", aspect_ratio: "1:1" }),
      });
      expect(res.statusCode, res.body).toBe(200);
      const out = res.json();
      expect(out.images[0].url).toBeUndefined();
      const meta = await sharp(Buffer.from(out.images[0].b64_json, "base64")).metadata();
      expect(meta.format).toBe("png");
      expect([meta.width, meta.height]).toEqual([out.width, out.height]);
      if (opts.realSizes) expect(out.width).toBe(out.height);
    });

    it("queue, then poll until succeeded (jpg)", async () => {
      const res = await h.app.inject({
        method: "POST",
        url: "/api/ai/queue",
        payload: body({ output_format: "jpg", output_quality: 50 }),
      });
      expect(res.statusCode, res.body).toBe(200);
      const [gen] = res.json().generations;
      expect(gen.status).toBe("queued");
      const g = await poll(gen.generation_id, (x) => x.status === "succeeded" || x.status === "failed");
      expect(g.status).toBe("succeeded");
      expect(g.model_name).toBe("flux-kontext-dev");
      expect(g.media_type).toBe("image");
      expect(g.prompt).toBe("make the square blue");
      expect(g.progress).toBe(1);
      expect(g.error_message).toBeNull();
      for (const k of ["enqueued_at", "started_at", "completed_at"])
        expect(Date.parse(g[k] as string)).not.toBeNaN();
      const file = await fetch(String(g.result_url).replace(/^http:\/\/localhost(:\d+)?/, base));
      expect(file.headers.get("content-type")).toBe("image/jpeg");
      expect((await sharp(Buffer.from(await file.arrayBuffer())).metadata()).format).toBe("jpeg");
    });

    it("streams the edit request itself (Accept: text/event-stream, and stream: true)", async () => {
      for (const [headers, extra] of [
        [{ accept: "text/event-stream" }, {}],
        [{}, { stream: true }],
      ] as const) {
        const res = await h.app.inject({
          method: "POST",
          url: "/api/ai/images/edit",
          headers,
          payload: body(extra),
        });
        expect(res.statusCode).toBe(200);
        expect(res.headers["content-type"]).toContain("text/event-stream");
        const events = parseSse(res.body);
        const names = events.map((e) => e.event);
        expect(names[0]).toBe("media_generation_queued");
        expect(
          (events[0]?.data as { queue_position?: number } | undefined)?.queue_position,
        ).toBeGreaterThanOrEqual(0);
        expect(names[1]).toBe("media_generation_started");
        const progress = events.filter((e) => e.event === "media_generation_progress");
        expect(progress.map((e) => (e.data as { step: number }).step)).toEqual(
          Array.from({ length: opts.quickSteps }, (_, i) => i + 1),
        );
        const p0 = progress[0]?.data as { total_steps: number; progress: number; preview?: string };
        expect(p0.total_steps).toBe(opts.quickSteps);
        expect(p0.preview).toMatch(/^data:image\/jpeg;base64,/);
        const last = events.at(-1);
        expect(last?.event).toBe("media_generation_completed");
        expect(last?.data).toMatchObject({
          status: "succeeded",
          media_type: "image",
          model: "flux-kontext-dev",
        });
        expect((last?.data as { url?: string } | undefined)?.url).toMatch(/\/results\//);
        const ids = events.map((e) => Number(e.id));
        expect(ids.every((id, i) => i === 0 || id > (ids[i - 1] as number))).toBe(true);
      }
    });

    it("per-generation events, replayed from Last-Event-ID", async () => {
      const [gen] = (await h.app.inject({ method: "POST", url: "/api/ai/queue", payload: body() })).json()
        .generations;
      const live = await h.app.inject({ url: `/api/ai/queue/${gen.generation_id}/events` }); // follows to the end
      const all: Sse = parseSse(live.body);
      expect(all.at(-1)?.event).toBe("media_generation_completed");
      expect(all.length).toBe(opts.quickSteps + 3);
      const resumed = parseSse(
        (
          await h.app.inject({
            url: `/api/ai/queue/${gen.generation_id}/events`,
            headers: { "last-event-id": String(all[1]?.id) },
          })
        ).body,
      );
      expect(resumed.map((e) => e.id)).toEqual(all.slice(2).map((e) => e.id));
      const missing = await h.app.inject({ url: "/api/ai/queue/nope/events" });
      expect(missing.statusCode).toBe(404);
    });

    it("GET /api/events announces media_generation_completed, with replay", async () => {
      const ac = new AbortController();
      const res = await fetch(`${base}/api/events`, { signal: ac.signal });
      expect(res.headers.get("content-type")).toContain("text/event-stream");
      const [gen] = (await h.app.inject({ method: "POST", url: "/api/ai/queue", payload: body() })).json()
        .generations;
      const text = await readUntil(
        res.body,
        (t) => t.includes(gen.generation_id) && t.endsWith("\n\n"),
        "the completed event",
      );
      ac.abort();
      const ev = parseSse(text).find(
        (e) => (e.data as { generation_id?: string } | undefined)?.generation_id === gen.generation_id,
      );
      expect(ev?.event).toBe("media_generation_completed");
      expect(ev?.data).toMatchObject({
        generation_id: gen.generation_id,
        status: "succeeded",
        media_type: "image",
      });
      expect(String((ev?.data as { url?: string } | undefined)?.url).startsWith(`${base}/results/`)).toBe(
        true,
      );
      // A client that reconnects with an earlier id gets what it missed.
      const ac2 = new AbortController();
      const again = await fetch(`${base}/api/events`, {
        signal: ac2.signal,
        headers: { "last-event-id": String(Number(ev?.id) - 1) },
      });
      const t2 = await readUntil(
        again.body,
        (t) => t.includes(gen.generation_id),
        "the replayed event",
        30_000,
      );
      ac2.abort();
      expect(t2).toContain(`id: ${ev?.id}`);
    });

    it("cancels a queued and a processing generation", async () => {
      const [long] = (
        await h.app.inject({
          method: "POST",
          url: "/api/ai/queue",
          payload: body({ num_inference_steps: opts.longSteps }),
        })
      ).json().generations;
      const [waiting] = (await h.app.inject({ method: "POST", url: "/api/ai/queue", payload: body() })).json()
        .generations;
      await poll(long.generation_id, (g) => g.status === "processing" && g.step >= 1);
      const cq = await h.app.inject({ method: "DELETE", url: `/api/ai/queue/${waiting.generation_id}` });
      expect(cq.json()).toEqual({ status: "success", generation_id: waiting.generation_id });
      expect((await h.app.inject({ url: `/api/ai/queue/${waiting.generation_id}` })).json().status).toBe(
        "cancelled",
      );
      const cp = await h.app.inject({ method: "DELETE", url: `/api/ai/queue/${long.generation_id}` });
      expect(cp.json()).toEqual({ status: "success", generation_id: long.generation_id });
      const g = await poll(long.generation_id, (x) => x.status !== "processing");
      expect(g.status).toBe("cancelled");
      expect(g.step).toBeLessThan(opts.longSteps);
      const again = await h.app.inject({ method: "DELETE", url: `/api/ai/queue/${long.generation_id}` });
      expect(again.statusCode).toBe(409);
      expect(again.json().error.type).toBe("generation_finished");
      // the engine is free again: the next generation runs
      const res = await h.app.inject({ method: "POST", url: "/api/ai/images/edit", payload: body() });
      expect(res.statusCode, res.body).toBe(200);
    });

    it("multiple generations: one id each, seeds seed+i", async () => {
      const res = await h.app.inject({
        method: "POST",
        url: "/api/ai/queue",
        payload: body({ num_generations: 2, seed: 100 }),
      });
      const gens = res.json().generations as Array<{ generation_id: string; status: string }>;
      expect(gens).toHaveLength(2);
      expect(new Set(gens.map((g) => g.generation_id)).size).toBe(2);
      const done = await Promise.all(
        gens.map((g) => poll(g.generation_id, (x) => x.status === "succeeded" || x.status === "failed")),
      );
      expect(done.map((g) => g.status)).toEqual(["succeeded", "succeeded"]);
      expect(done.map((g) => g.seed)).toEqual([100, 101]);
      const list = (await h.app.inject({ url: "/api/ai/queue?status=succeeded&limit=1000" })).json();
      const ids = list.generations.map((g: { generation_id: string }) => g.generation_id);
      for (const g of gens) expect(ids).toContain(g.generation_id);
      expect(list.count).toBe(list.generations.length);
    });

    it("a reference image and a mask: queued, run, and shown in the history as the input is", async () => {
      const reference = await pngDataUri(48, 40, { r: 20, g: 90, b: 200 });
      const mask = await maskDataUri(64, 48);
      const res = await h.app.inject({
        method: "POST",
        url: "/api/ai/queue",
        payload: body({ input_image_2: reference, mask_image: mask }),
      });
      expect(res.statusCode, res.body).toBe(200);
      const id = res.json().generations[0].generation_id as string;
      const done = await poll(id, (g) => g.status === "succeeded" || g.status === "failed");
      expect(done.status, String(done.error_message)).toBe("succeeded");
      expect(done).not.toHaveProperty("input_image_2"); // sent inline: stored by hash, not echoed
      expect(done).not.toHaveProperty("warnings"); // the mask has the input's size
      const history = (await h.app.inject({ url: "/api/history?limit=50" })).json();
      const item = history.generations.find((g: { generation_id: string }) => g.generation_id === id);
      expect(item.references).toEqual([
        {
          field: "input_image_2",
          url: expect.stringMatching(new RegExp(`/api/history/${id}/inputs/input_image_2$`)),
          thumbnail_url: expect.stringMatching(/\/inputs\/input_image_2\/thumbnail$/),
          width: 48,
          height: 40,
        },
      ]);
      expect(item.mask).toMatchObject({ field: "mask_image", width: 64, height: 48 });
      const sent = (uri: string) => Buffer.from(uri.split(",")[1] as string, "base64");
      for (const [url, uri] of [
        [item.references[0].url, reference],
        [item.mask.url, mask],
      ] as const) {
        const file = await h.app.inject({ url: new URL(url).pathname });
        expect(file.statusCode, url).toBe(200);
        expect(file.headers["content-type"]).toBe("image/png");
        expect(Buffer.compare(file.rawPayload, sent(uri)), `${url}: the bytes as sent`).toBe(0);
      }
      const thumb = await h.app.inject({ url: new URL(item.references[0].thumbnail_url).pathname });
      expect([thumb.statusCode, thumb.headers["content-type"]]).toEqual([200, "image/webp"]);
      const none = await h.app.inject({ url: `/api/history/${id}/inputs/input_image_3` });
      expect(none.statusCode).toBe(404);
    });

    it("reports health and metrics", async () => {
      const health = await h.app.inject({ url: "/healthz" });
      expect(health.statusCode).toBe(200);
      expect(health.json()).toMatchObject({ status: "ok", model: "flux-kontext-dev", demo: true });
      expect(["ready", "busy"]).toContain(health.json().state);
      // these tests run engines on the CPU; with workers (Redis) the device names its worker
      expect(health.json().device).toMatch(/^cpu(@.+)?$/);
      const metrics = (await h.app.inject({ url: "/metrics" })).body;
      expect(metrics).toContain('kontext_queue_depth{status="queued"}');
      expect(metrics).toContain('kontext_generations_total{status="succeeded"}');
      expect(metrics).toContain("kontext_step_duration_seconds_bucket");
      expect(metrics).toContain('kontext_errors_total{code="generation_finished"} 1');
    });
  });
}
