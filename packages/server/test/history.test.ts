// The workbench's server side: GET /api/history (every status, prompt search, paging, edit chains
// linked by parent_generation_id, kept across a restart), the input image, and `/` serving the
// built workbench. Against the fake engine: what is tested here is the gateway's bookkeeping.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withDefaults } from "../src/schema/flux-kontext-dev.js";
import { type Harness, makeHarness, pngDataUri, waitFor } from "./helpers.js";

describe("history API", () => {
  let h: Harness;
  const dataDir = mkdtempSync(path.join(tmpdir(), "kontext-history-"));
  beforeAll(async () => {
    h = await makeHarness({ dataDir });
  });
  afterAll(async () => {
    await h?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const edit = async (payload: Record<string, unknown>) => {
    const res = await h.app.inject({ method: "POST", url: "/api/ai/images/edit", payload });
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as { generation_id: string; images: [{ url: string }] };
  };
  const history = async (query = "") => {
    const res = await h.app.inject({ url: `/api/history${query}` });
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as { count: number; generations: Array<Record<string, unknown>> };
  };
  const resultDataUri = async (url: string) => {
    const res = await h.app.inject({ url: new URL(url).pathname });
    return `data:image/webp;base64,${res.rawPayload.toString("base64")}`;
  };

  it("links an edit whose input is an earlier result to it, step after step", async () => {
    const first = await edit({
      input_image: await pngDataUri(40, 30),
      prompt: "Add a red HAT",
      num_inference_steps: 4,
      seed: 7,
      guidance: 3.5,
    });
    const second = await edit({
      input_image: await resultDataUri(first.images[0].url),
      prompt: "now make it blue",
      num_inference_steps: 4,
    });
    const third = await edit({
      input_image: await resultDataUri(second.images[0].url),
      prompt: "add a scarf",
      num_inference_steps: 4,
    });
    const { generations } = await history();
    const byId = new Map(generations.map((g) => [g.generation_id, g]));
    expect(byId.get(first.generation_id)?.parent_generation_id).toBeNull();
    expect(byId.get(second.generation_id)?.parent_generation_id).toBe(first.generation_id);
    expect(byId.get(third.generation_id)?.parent_generation_id).toBe(second.generation_id);
    // Newest first, with the parameters, seed and timings a user reruns from.
    expect(generations[0]?.generation_id).toBe(third.generation_id);
    const g1 = byId.get(first.generation_id) as Record<string, unknown>;
    expect(g1).toMatchObject({ status: "succeeded", prompt: "Add a red HAT", seed: 7, guidance: 3.5 });
    expect(g1.timings).toMatchObject({ inference: expect.any(Number) });
  });

  it("searches prompts case-insensitively, treating % and _ literally", async () => {
    await edit({ input_image: await pngDataUri(), prompt: "100% zoom_in", num_inference_steps: 4 });
    expect((await history("?q=hat")).generations.map((g) => g.prompt)).toEqual(["Add a red HAT"]);
    expect((await history("?q=%25")).generations.map((g) => g.prompt)).toEqual(["100% zoom_in"]);
    expect((await history("?q=m_i")).count).toBe(1);
    expect((await history("?q=nothing-like-this")).count).toBe(0);
  });

  it("keeps failed and cancelled generations and pages with before", async () => {
    const queued = await h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      payload: { input_image: await pngDataUri(), prompt: "cancel me", num_inference_steps: 50 },
    });
    const id = queued.json().generations[0].generation_id as string;
    await h.app.inject({ method: "DELETE", url: `/api/ai/queue/${id}` });
    await waitFor(() => h.store.get(id)?.status === "cancelled", 10_000, "cancelled");
    const all = await history();
    expect(all.generations.map((g) => g.status)).toContain("cancelled");
    const page1 = await history("?limit=2");
    expect(page1.count).toBe(2);
    const last = page1.generations[1]?.generation_id as string;
    const page2 = await history(`?limit=2&before=${last}`);
    expect(page2.generations[0]?.generation_id).toBe(all.generations[2]?.generation_id);
  });

  it("serves the input image as it was sent: its original bytes and content type", async () => {
    const { generations } = await history("?q=hat");
    const g = generations[0] as { input_url: string; input_width: number; input_height: number };
    expect([g.input_width, g.input_height]).toEqual([40, 30]);
    const res = await h.app.inject({ url: new URL(g.input_url).pathname });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("image/png");
    const sent = await pngDataUri(40, 30);
    expect(res.rawPayload).toEqual(Buffer.from(sent.slice(sent.indexOf(",") + 1), "base64"));

    const jpeg = await sharp({ create: { width: 24, height: 16, channels: 3, background: "#2a6" } })
      .jpeg({ quality: 70 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const j = await edit({
      input_image: `data:image/jpeg;base64,${jpeg.toString("base64")}`,
      prompt: "jpeg in",
    });
    const item = (await history("?q=jpeg%20in")).generations[0] as { input_url: string; input_width: number };
    expect(item.input_width).toBe(16); // the size the engine saw: EXIF orientation applied
    const served = await h.app.inject({ url: new URL(item.input_url).pathname });
    expect(served.headers["content-type"]).toBe("image/jpeg");
    expect(served.rawPayload).toEqual(jpeg);
    expect(j.generation_id).toBeDefined();

    // An input an earlier version stored as raw RGB still runs and is served as a PNG.
    const legacy = "cd".repeat(32);
    mkdirSync(path.join(dataDir, "inputs", "cd"), { recursive: true });
    writeFileSync(path.join(dataDir, "inputs", "cd", `${legacy}.rgb`), Buffer.alloc(5 * 4 * 3, 200));
    writeFileSync(
      path.join(dataDir, "inputs", "cd", `${legacy}.json`),
      JSON.stringify({ width: 5, height: 4 }),
    );
    const old = await h.files.findInput(legacy);
    expect(old).toMatchObject({ format: "raw", width: 5, height: 4 });
    const params = withDefaults({ input_image: "x", prompt: "legacy", num_inference_steps: 4 } as never);
    const [lg] = await h.queue.submit(params, old as NonNullable<typeof old>, 1);
    expect((await h.queue.waitFor(lg?.id as string)).status).toBe("succeeded");
    const png = await h.app.inject({ url: `/api/history/${lg?.id}/input` });
    expect(png.headers["content-type"]).toBe("image/png");
    const meta = await sharp(png.rawPayload).metadata();
    expect([meta.width, meta.height]).toEqual([5, 4]);
    const missing = await h.app.inject({ url: "/api/history/nope/input" });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.detail).toBe("Generation not found: nope");
  });

  it("answers bad queries with 400 naming the field", async () => {
    for (const [query, field] of [
      ["?limit=0", "limit"],
      ["?limit=abc", "limit"],
      ["?before=unknown-id", "before"],
      ["?colour=red", "colour"],
    ] as const) {
      const res = await h.app.inject({ url: `/api/history${query}` });
      expect(res.statusCode, query).toBe(400);
      expect(res.json().error.detail, query).toContain(field);
    }
  });

  it("reads limit and status as GET /api/ai/queue does: one parser, the same refusals", async () => {
    for (const query of ["?limit=0", "?limit=1001", "?status=done", "?status=queued,nope"]) {
      const [hist, queue] = await Promise.all([
        h.app.inject({ url: `/api/history${query}` }),
        h.app.inject({ url: `/api/ai/queue${query}` }),
      ]);
      expect([hist.statusCode, queue.statusCode], query).toEqual([400, 400]);
      expect(hist.json().error, query).toEqual(queue.json().error);
      expect(hist.json().error.type, query).toBe("invalid_request");
    }
    expect((await h.app.inject({ url: "/api/history?limit=0" })).json().error.detail).toBe(
      'limit: must be an integer from 1 to 1000, got "0"',
    );
  });

  it("still has every generation and chain after a restart", async () => {
    const before = await history();
    await h.close(true);
    h = await makeHarness({ dataDir });
    const after = await history();
    expect(after.generations.map((g) => [g.generation_id, g.parent_generation_id, g.status])).toEqual(
      before.generations.map((g) => [g.generation_id, g.parent_generation_id, g.status]),
    );
  });
});

describe("workbench files at /", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "kontext-workbench-"));
  const harnesses: Harness[] = [];
  afterAll(async () => {
    for (const h of harnesses) await h.close();
    rmSync(dir, { recursive: true, force: true });
  });
  /** The app composed as main.ts composes it, serving `workbenchDir` at `/`. */
  const appWith = async (workbenchDir: string) => {
    const h = await makeHarness({ waitReady: false, workbenchDir });
    harnesses.push(h);
    return h.app;
  };

  it("serves index.html at / and hashed assets for good; says how to build when missing", async () => {
    mkdirSync(path.join(dir, "assets"));
    writeFileSync(path.join(dir, "index.html"), "<!doctype html><title>Kontext</title>");
    writeFileSync(path.join(dir, "assets", "index-abc123.js"), "console.log(1)");
    const app = await appWith(dir);
    const page = await app.inject({ url: "/" });
    expect(page.statusCode).toBe(200);
    expect(page.headers["content-type"]).toContain("text/html");
    expect(page.headers["cache-control"]).toBe("no-cache");
    const js = await app.inject({ url: "/assets/index-abc123.js" });
    expect(js.headers["content-type"]).toContain("text/javascript");
    expect(js.headers["cache-control"]).toContain("immutable");
    expect((await app.inject({ url: "/assets/..%2Findex.html" })).statusCode).toBe(404);
    expect((await app.inject({ url: "/assets/missing.js" })).statusCode).toBe(404);

    const unbuilt = await (await appWith(path.join(dir, "nope"))).inject({ url: "/" });
    expect(unbuilt.statusCode).toBe(503);
    expect(unbuilt.json().error.detail).toMatch(/npm start/);
  });
});
