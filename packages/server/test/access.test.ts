// API keys (who may call, who sees what, per-key limits) and Idempotency-Key, against the fake
// engine through inject().
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { authRequired } from "../src/auth/keys.js";
import { ConfigError, defaultConfig } from "../src/config.js";
import { fakeEngine, type Harness, makeHarness, pngDataUri, waitFor } from "./helpers.js";

const KEY_A = "key-a-0123456789";
const KEY_B = "key-b-9876543210";
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const as = (key: string) => ({ authorization: `Bearer ${key}` });

describe("when keys are required", () => {
  it("follows the listen address unless told otherwise, and refuses to start exposed without keys", () => {
    const cfg = (o: Partial<ReturnType<typeof defaultConfig>>) => defaultConfig({ ...o });
    expect(authRequired(cfg({ host: "127.0.0.1" }))).toBe(false);
    expect(authRequired(cfg({ host: "::1" }))).toBe(false);
    expect(authRequired(cfg({ host: "127.0.0.1", apiKeys: [KEY_A] }))).toBe(true);
    expect(authRequired(cfg({ host: "0.0.0.0", apiKeys: [KEY_A] }))).toBe(true);
    expect(() => authRequired(cfg({ host: "0.0.0.0" }))).toThrow(ConfigError);
    expect(() => authRequired(cfg({ host: "0.0.0.0" }))).toThrow(/KONTEXT_API_KEYS/);
    expect(authRequired(cfg({ host: "0.0.0.0", requireApiKey: false }))).toBe(false);
    expect(() => authRequired(cfg({ host: "127.0.0.1", requireApiKey: true }))).toThrow(/KONTEXT_API_KEYS/);
  });
});

describe("API keys", () => {
  let h: Harness;
  let image: string;
  beforeAll(async () => {
    h = await makeHarness({
      // B is configured by its hash only; C has the same limits
      config: {
        apiKeys: [KEY_A, `sha256:${sha256(KEY_B)}`, "key-c-limits-0123"],
        keySubmitsPerMinute: 4,
        keyMaxActiveJobs: 3,
      },
      command: fakeEngine({ FAKE_STEP_MS: "40" }),
    });
    image = await pngDataUri();
  });
  afterAll(async () => h?.close());

  const submit = (
    key: string | null,
    extra: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) =>
    h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      headers: { ...(key ? as(key) : {}), ...headers },
      payload: { input_image: image, prompt: "p", num_inference_steps: 4, ...extra },
    });

  it("answers 401 without a key or with a wrong one, and keeps health, docs and the schema open", async () => {
    const none = await submit(null);
    expect(none.statusCode).toBe(401);
    expect(none.headers["www-authenticate"]).toMatch(/^Bearer/);
    expect(none.json().error.detail).toMatch(/requires an API key.*Authorization: Bearer/);
    const wrong = await submit("not-a-key");
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().error.detail).toMatch(/not valid/);
    expect((await h.app.inject({ url: "/api/ai/models" })).statusCode).toBe(401);
    expect((await h.app.inject({ url: "/metrics" })).statusCode).toBe(401);
    expect((await h.app.inject({ url: "/api/ai/models", headers: as(KEY_B) })).statusCode).toBe(200);
    expect((await h.app.inject({ url: "/healthz" })).statusCode).toBe(200);
    expect((await h.app.inject({ url: "/openapi.json" })).statusCode).toBe(200);
  });

  it("shows a key only its own generations: others' are 404 everywhere", async () => {
    const res = await submit(KEY_A);
    expect(res.statusCode, res.body).toBe(200);
    const id = res.json().generations[0].generation_id as string;
    expect((await h.app.inject({ url: `/api/ai/queue/${id}`, headers: as(KEY_A) })).statusCode).toBe(200);
    for (const [method, url] of [
      ["GET", `/api/ai/queue/${id}`],
      ["GET", `/api/ai/queue/${id}/events`],
      ["GET", `/api/ai/queue/${id}/preview`],
      ["DELETE", `/api/ai/queue/${id}`],
    ] as const) {
      const other = await h.app.inject({ method, url, headers: as(KEY_B) });
      expect(other.statusCode, `${method} ${url}`).toBe(404);
      expect(other.json().error.detail).toBe(`Generation not found: ${id}`);
    }
    const listB = (await h.app.inject({ url: "/api/ai/queue?status=all", headers: as(KEY_B) })).json();
    expect(listB.generations.map((g: { generation_id: string }) => g.generation_id)).not.toContain(id);
    const listA = (await h.app.inject({ url: "/api/ai/queue?status=all", headers: as(KEY_A) })).json();
    expect(listA.generations.map((g: { generation_id: string }) => g.generation_id)).toContain(id);

    await waitFor(() => h.store.get(id)?.status === "succeeded", 20_000, "A's generation");
    const g = (await h.app.inject({ url: `/api/ai/queue/${id}`, headers: as(KEY_A) })).json();
    // The result URL holds 128 random bits besides the id: knowing the id is not enough.
    const name = new URL(g.result_url).pathname.split("/").pop() as string;
    expect(name).toMatch(new RegExp(`^${id}-[A-Za-z0-9_-]{22}\\.webp$`));
    expect((await h.app.inject({ url: `/results/${name}` })).statusCode).toBe(200);
    expect((await h.app.inject({ url: `/results/${id}.webp` })).statusCode).toBe(404);
  });

  it("limits generations active at once per key (429 + Retry-After), other keys unaffected", async () => {
    const ids: string[] = [];
    const first = await submit(KEY_B, { num_inference_steps: 50, num_generations: 3 });
    expect(first.statusCode, first.body).toBe(200);
    ids.push(...first.json().generations.map((g: { generation_id: string }) => g.generation_id));
    const over = await submit(KEY_B, { num_inference_steps: 4 });
    expect(over.statusCode).toBe(429);
    expect(Number(over.headers["retry-after"])).toBeGreaterThan(0);
    expect(over.json().error.type).toBe("too_many_active");
    expect(over.json().error.detail).toMatch(
      /3 generations queued or processing.*limit is 3.*KONTEXT_KEY_MAX_ACTIVE_JOBS/,
    );
    for (const id of ids)
      await h.app.inject({ method: "DELETE", url: `/api/ai/queue/${id}`, headers: as(KEY_B) });
    await waitFor(() => ids.every((id) => h.store.get(id)?.status === "cancelled"), 20_000, "cancelled");
    expect((await submit(KEY_B)).statusCode).toBe(200);
  });

  it("limits submissions per minute per key (429 + Retry-After)", async () => {
    for (let i = 0; i < 4; i++) {
      const res = await submit("key-c-limits-0123");
      expect(res.statusCode, res.body).toBe(200);
      const id = res.json().generations[0].generation_id as string;
      await waitFor(() => h.store.get(id)?.status === "succeeded", 20_000, "a quick generation");
    }
    const res = await submit("key-c-limits-0123");
    expect(res.statusCode).toBe(429);
    expect(res.json().error.type).toBe("rate_limited");
    expect(res.json().error.detail).toMatch(
      /4 submissions in the last minute.*KONTEXT_KEY_SUBMITS_PER_MINUTE/,
    );
    expect(Number(res.headers["retry-after"])).toBeGreaterThan(0);
    expect(Number(res.headers["retry-after"])).toBeLessThanOrEqual(60);
    expect((await submit(KEY_A)).statusCode).toBe(200); // another key is not affected
  });
});

describe("Idempotency-Key", () => {
  let h: Harness;
  let image: string;
  beforeAll(async () => {
    h = await makeHarness({ command: fakeEngine({ FAKE_STEP_MS: "5" }) });
    image = await pngDataUri();
  });
  afterAll(async () => h?.close());

  const post = (url: string, key: string, payload: Record<string, unknown>) =>
    h.app.inject({ method: "POST", url, headers: { "idempotency-key": key }, payload });

  it("gives the same generations for the same key and body, 409 for a different body", async () => {
    const body = { input_image: image, prompt: "once", num_inference_steps: 4, num_generations: 2 };
    const before = h.store.list({ statuses: ["queued", "processing", "succeeded"], limit: 1000 }).length;
    const a = await post("/api/ai/queue", "order-1", body);
    // the same body with its fields in another order is the same request
    const b = await post("/api/ai/queue", "order-1", Object.fromEntries(Object.entries(body).reverse()));
    expect(a.statusCode, a.body).toBe(200);
    const ids = (r: typeof a) => r.json().generations.map((g: { generation_id: string }) => g.generation_id);
    expect(ids(b)).toEqual(ids(a));
    expect(h.store.list({ statuses: ["queued", "processing", "succeeded"], limit: 1000 }).length).toBe(
      before + 2,
    );

    const c = await post("/api/ai/queue", "order-1", { ...body, prompt: "twice" });
    expect(c.statusCode).toBe(409);
    expect(c.json().error.type).toBe("idempotency_conflict");
    expect(c.json().error.detail).toMatch(/order-1.*different request body/);
    // the same key on the other endpoint is another request too
    expect((await post("/api/ai/images/edit", "order-1", { ...body, num_generations: 1 })).statusCode).toBe(
      409,
    );
  });

  it("makes one generation when requests with the same key arrive together", async () => {
    const body = { input_image: image, prompt: "together", num_inference_steps: 4 };
    const all = await Promise.all(Array.from({ length: 8 }, () => post("/api/ai/queue", "burst-1", body)));
    const ids = new Set(all.map((r) => r.json().generations[0].generation_id));
    expect(all.map((r) => r.statusCode)).toEqual(Array(8).fill(200));
    expect(ids.size).toBe(1);
  });

  it("on the sync endpoint, answers a retry with the first request's image", async () => {
    const body = { input_image: image, prompt: "sync", num_inference_steps: 4 };
    const a = await post("/api/ai/images/edit", "sync-1", body);
    const b = await post("/api/ai/images/edit", "sync-1", body);
    expect(a.statusCode, a.body).toBe(200);
    expect(b.json().generation_id).toBe(a.json().generation_id);
    expect(b.json().images).toEqual(a.json().images);
  });

  it("refuses a malformed key", async () => {
    const res = await post("/api/ai/queue", "with space", { input_image: image, prompt: "p" });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.detail).toMatch(/^Idempotency-Key: must be/);
  });
});
