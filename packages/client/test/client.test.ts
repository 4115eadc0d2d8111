// The typed client against the real server (real engine, tiny model): edit, submit + wait,
// stream events in order, cancel, errors; and the credentials it sends.
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, inject, it } from "vitest";
import { gradientPng } from "../src/cli/png.js";
import { Kontext, KontextError, type KontextEvent } from "../src/index.js";

const kontext = new Kontext({ baseUrl: inject("serverUrl"), apiKey: inject("apiKey") });
const image = `data:image/png;base64,${gradientPng(64, 48).toString("base64")}`;
const isWebp = (b: Uint8Array) => Buffer.from(b.slice(0, 4)).toString() === "RIFF";
const isPng = (b: Uint8Array) => b[0] === 0x89 && Buffer.from(b.slice(1, 4)).toString() === "PNG";

describe("Kontext client", () => {
  it("edit(): waits and returns the image URL, seed, size and timings", async () => {
    const res = await kontext.edit({
      input_image: image,
      prompt: "make it blue",
      num_inference_steps: 4,
      seed: 5,
    });
    expect(res.seed).toBe(5);
    expect(res.width).toBeGreaterThan(0);
    expect(res.timings.inference).toBeGreaterThan(0);
    const url = res.images[0]?.url as string;
    expect(url.startsWith(`${kontext.baseUrl}/results/`)).toBe(true);
    expect(isWebp(await kontext.download(url))).toBe(true);
  });

  it("edit() with response_format b64_json inlines the image", async () => {
    const res = await kontext.edit({
      input_image: image,
      prompt: "p",
      num_inference_steps: 4,
      output_format: "png",
      response_format: "b64_json",
    });
    expect(isPng(Buffer.from(res.images[0]?.b64_json as string, "base64"))).toBe(true);
  });

  it("submit() + wait(): two generations, each succeeded with its own seed", async () => {
    const ids = await kontext.submit({
      input_image: image,
      prompt: "add a hat",
      num_inference_steps: 4,
      num_generations: 2,
      seed: 100,
    });
    expect(ids).toHaveLength(2);
    const seen: string[] = [];
    const done = await Promise.all(ids.map((id) => kontext.wait(id, { onEvent: (e) => seen.push(e.event) })));
    expect(done.map((g) => g.status)).toEqual(["succeeded", "succeeded"]);
    expect(done.map((g) => g.seed)).toEqual([100, 101]);
    expect(done[0]?.result_url).toMatch(/\/results\//);
    expect(seen).toContain("media_generation_completed");
    const listed = await kontext.list({ status: "succeeded", limit: 50 });
    expect(listed.generations.map((g) => g.generation_id)).toEqual(expect.arrayContaining(ids));
  });

  it("stream(params): queued, started, every step in order, completed; ids increase", async () => {
    const events: KontextEvent[] = [];
    for await (const e of kontext.stream({ input_image: image, prompt: "p", num_inference_steps: 4 }))
      events.push(e);
    const names = events.map((e) => e.event);
    expect(names[0]).toBe("media_generation_queued");
    expect(names[1]).toBe("media_generation_started");
    expect(names.at(-1)).toBe("media_generation_completed");
    const steps = events.flatMap((e) => (e.event === "media_generation_progress" ? [e.data.step] : []));
    expect(steps).toEqual([1, 2, 3, 4]);
    const ids = events.map((e) => e.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    const last = events.at(-1);
    expect(last?.event === "media_generation_completed" && last.data.status).toBe("succeeded");
  });

  it("stream(id) replays a finished generation's events from the start, or after lastEventId", async () => {
    const [id] = await kontext.submit({ input_image: image, prompt: "p", num_inference_steps: 4 });
    await kontext.wait(id as string);
    const all: KontextEvent[] = [];
    for await (const e of kontext.stream(id as string)) all.push(e);
    expect(all.at(-1)?.event).toBe("media_generation_completed");
    const after: KontextEvent[] = [];
    for await (const e of kontext.stream(id as string, { lastEventId: all[1]?.id as number })) after.push(e);
    expect(after.map((e) => e.id)).toEqual(all.slice(2).map((e) => e.id));
  });

  it("cancel(): a running generation stops between steps and ends cancelled", async () => {
    const [id] = (await kontext.submit({ input_image: image, prompt: "p", num_inference_steps: 50 })) as [
      string,
    ];
    const events: KontextEvent[] = [];
    for await (const e of kontext.stream(id)) {
      events.push(e);
      if (e.event === "media_generation_progress" && e.data.step === 1) {
        expect(await kontext.cancel(id)).toEqual({ status: "success", generation_id: id });
      }
    }
    const last = events.at(-1);
    expect(last?.event === "media_generation_completed" && last.data.status).toBe("cancelled");
    const steps = events.filter((e) => e.event === "media_generation_progress").length;
    expect(steps).toBeLessThan(50);
    expect((await kontext.wait(id)).status).toBe("cancelled");
    const again = await kontext.cancel(id).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(KontextError);
    expect((again as KontextError).status).toBe(409);
  });

  it("a bad request throws KontextError with the status, code, field and the server's message", async () => {
    const err = await kontext
      .edit({ input_image: image, prompt: "p", num_inference_steps: 2 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KontextError);
    const e = err as KontextError;
    expect([e.status, e.code, e.fields]).toEqual([400, "invalid_request", ["num_inference_steps"]]);
    expect(e.message).toBe("num_inference_steps: must be an integer from 4 to 50, got 2");
    const streamed = await kontext
      .stream({ input_image: image, prompt: "" })
      .next()
      .catch((x: unknown) => x);
    expect((streamed as KontextError).fields).toEqual(["prompt"]);
    const missing = await kontext.get("no-such-id").catch((x: unknown) => x);
    expect((missing as KontextError).message).toBe("Generation not found: no-such-id");
  });

  it("a missing or wrong key is a 401 KontextError saying how to send one", async () => {
    for (const apiKey of ["", "sk-wrong"]) {
      const err = await new Kontext({ baseUrl: kontext.baseUrl, apiKey }).models().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KontextError);
      expect([(err as KontextError).status, (err as KontextError).code]).toEqual([401, "unauthorized"]);
      expect((err as KontextError).message).toContain("send Authorization: Bearer <key>");
    }
  });

  it("history(), star() and deleteGeneration(): the history with chain links, stars and deletion", async () => {
    const [id] = await kontext.submit({
      input_image: image,
      prompt: "for the history",
      num_inference_steps: 4,
    });
    const done = await kontext.wait(id as string);
    expect(done.status).toBe("succeeded");
    const [item] = await kontext.history({ q: "FOR THE HISTORY", limit: 5 });
    expect(item).toMatchObject({ generation_id: id, starred: false, parent_generation_id: null });
    expect(item?.thumbnail_url).toMatch(/\/api\/history\/.+\/thumbnail$/);
    expect((await kontext.star(id as string, true)).starred).toBe(true);
    expect((await kontext.history({ starred: true })).map((g) => g.generation_id)).toContain(id);
    expect(await kontext.deleteGeneration(id as string)).toEqual({ status: "success", generation_id: id });
    expect((await kontext.history({ q: "for the history" })).map((g) => g.generation_id)).not.toContain(id);
    await expect(kontext.deleteGeneration(id as string)).rejects.toMatchObject({ status: 404 });
  });

  it("models() lists flux-kontext-dev with its request schema", async () => {
    const models = await kontext.models();
    expect(models.map((m) => m.id)).toEqual(["flux-kontext-dev"]);
    expect(models[0]?.json_request_schema).toHaveProperty("properties.prompt");
  });
});

describe("credentials", () => {
  it("sends Authorization: Bearer with apiKey (or KONTEXT_API_KEY), and nothing without", async () => {
    const seen: IncomingHttpHeaders[] = [];
    const srv = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { "content-type": "application/json" }).end('{"object":"list","data":[]}');
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    try {
      await new Kontext({ baseUrl: url, apiKey: "k-123" }).models();
      process.env.KONTEXT_API_KEY = "k-env";
      process.env.KONTEXT_URL = url;
      await new Kontext().models();
      delete process.env.KONTEXT_API_KEY;
      await new Kontext().models();
    } finally {
      delete process.env.KONTEXT_API_KEY;
      delete process.env.KONTEXT_URL;
      srv.close();
    }
    expect(seen.map((h) => h.authorization)).toEqual(["Bearer k-123", "Bearer k-env", undefined]);
  });
});
