// Cross-site requests and DNS rebinding against the default setup (loopback, keys off): another
// site's page cannot queue work or read the history; listed origins get CORS; the workbench's own
// same-origin requests, API clients without browser headers and navigations keep working.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseOrigins } from "../src/api/origin.js";
import { ConfigError } from "../src/config.js";
import { fakeEngine, type Harness, makeHarness, pngDataUri } from "./helpers.js";

const EVIL = "http://evil.example";
const APP = "https://app.example.com";

async function multipart(image: string): Promise<{ payload: Buffer; headers: Record<string, string> }> {
  const form = new FormData();
  const png = Buffer.from(image.split(",")[1] as string, "base64");
  form.append("image", new Blob([png], { type: "image/png" }), "photo.png");
  form.append("prompt", "make it purple");
  form.append("num_inference_steps", "4");
  const res = new Response(form);
  return {
    payload: Buffer.from(await res.arrayBuffer()),
    headers: { "content-type": res.headers.get("content-type") as string },
  };
}

describe("cross-site requests and DNS rebinding (keys off)", () => {
  let h: Harness;
  let image: string;
  beforeAll(async () => {
    h = await makeHarness({
      config: { corsOrigins: [APP], publicUrl: "https://kontext.example.org" },
      command: fakeEngine({ FAKE_STEP_MS: "5" }),
    });
    image = await pngDataUri();
  });
  afterAll(async () => h?.close());

  const queued = () => h.store.list({ statuses: ["queued", "processing", "succeeded"], limit: 100 }).length;
  const body = () => ({ input_image: image, prompt: "p", num_inference_steps: 4 });

  it("refuses a form POST from another site's page (no preflight) and queues nothing", async () => {
    const before = queued();
    const form = await multipart(image);
    const res = await h.app.inject({
      method: "POST",
      url: "/v1/images/edits",
      headers: { ...form.headers, origin: EVIL, "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors" },
      payload: form.payload,
    });
    expect(res.statusCode).toBe(403);
    expect(res.json().error.code ?? res.json().error.type).toBe("cross_site_refused");
    expect(res.json().error.message ?? res.json().error.detail).toMatch(/KONTEXT_CORS_ORIGINS/);
    for (const headers of [{ origin: EVIL }, { "sec-fetch-site": "cross-site" }, { origin: "null" }]) {
      const r = await h.app.inject({ method: "POST", url: "/api/ai/queue", headers, payload: body() });
      expect(r.statusCode, JSON.stringify(headers)).toBe(403);
      expect(r.json().error.type).toBe("cross_site_refused");
    }
    const del = await h.app.inject({ method: "DELETE", url: "/api/ai/queue/x", headers: { origin: EVIL } });
    expect(del.statusCode).toBe(403);
    expect(queued()).toBe(before);
  });

  it("refuses a rebound Host (another domain name) before reading anything", async () => {
    const rebound = await h.app.inject({ url: "/api/history", headers: { host: "attacker.example:8080" } });
    expect(rebound.statusCode).toBe(403);
    expect(rebound.json().error.type).toBe("host_refused");
    expect(rebound.body).not.toContain("generations");
    for (const host of [
      "127.0.0.1:8080",
      "localhost:8080",
      "[::1]:8080",
      "192.168.1.20:8080",
      "kontext.example.org",
    ]) {
      const ok = await h.app.inject({ url: "/api/history", headers: { host } });
      expect(ok.statusCode, host).toBe(200);
    }
  });

  it("keeps same-origin pages, plain API clients, navigations and result files working", async () => {
    const same = await h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      headers: { host: "127.0.0.1:8080", origin: "http://127.0.0.1:8080", "sec-fetch-site": "same-origin" },
      payload: body(),
    });
    expect(same.statusCode).toBe(200);
    expect((await h.app.inject({ method: "POST", url: "/api/ai/queue", payload: body() })).statusCode).toBe(
      200,
    );
    const nav = await h.app.inject({
      url: "/api/ai/models",
      headers: { "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate" },
    });
    expect(nav.statusCode).toBe(200);
    const health = await h.app.inject({
      url: "/healthz",
      headers: { origin: EVIL, "sec-fetch-site": "cross-site" },
    });
    expect(health.statusCode).toBe(200);
  });

  it("turns CORS on for origins in KONTEXT_CORS_ORIGINS, preflight included", async () => {
    const pre = await h.app.inject({
      method: "OPTIONS",
      url: "/api/ai/queue",
      headers: {
        origin: APP,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, authorization",
      },
    });
    expect(pre.statusCode).toBe(204);
    expect(pre.headers["access-control-allow-origin"]).toBe(APP);
    expect(String(pre.headers["access-control-allow-headers"])).toMatch(/authorization/);
    const res = await h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      headers: { origin: APP, "sec-fetch-site": "cross-site" },
      payload: body(),
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers["access-control-allow-origin"]).toBe(APP);
    expect(res.headers.vary).toMatch(/Origin/);
    const other = await h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      headers: { origin: EVIL },
      payload: body(),
    });
    expect(other.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("refuses a malformed KONTEXT_CORS_ORIGINS entry at start, naming its position", () => {
    expect([...parseOrigins(["https://a.example", "http://localhost:5173"])]).toEqual([
      "https://a.example",
      "http://localhost:5173",
    ]);
    expect(() => parseOrigins(["https://a.example", "https://b.example/app"])).toThrow(ConfigError);
    expect(() => parseOrigins(["https://a.example", "b.example"])).toThrow(/entry 2/);
  });
});

describe("with keys on", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await makeHarness({ config: { apiKeys: ["key-origin-0123456789"] } });
  });
  afterAll(async () => h?.close());

  it("answers any Host (callers authenticate), and still refuses cross-site pages", async () => {
    const auth = { authorization: "Bearer key-origin-0123456789" };
    const res = await h.app.inject({ url: "/api/history", headers: { ...auth, host: "kontext.lan:8080" } });
    expect(res.statusCode).toBe(200);
    const cross = await h.app.inject({ url: "/api/history", headers: { ...auth, origin: EVIL } });
    expect(cross.statusCode).toBe(403);
  });
});
