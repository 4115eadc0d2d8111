// The API-key check cannot be skipped by spelling a path differently: every protected route, in
// plain, percent-encoded, mixed-case-encoded and absolute-form request targets, answers 401
// without a key, over a real socket (inject() would normalise the target).
import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import type { FastifyRequest } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPEN_ROUTES, visibleTo } from "../src/api/auth.js";
import type { AppContext } from "../src/app.js";
import type { Generation } from "../src/jobs/types.js";
import { fakeEngine, type Harness, here, makeHarness, pngDataUri, waitFor } from "./helpers.js";

const KEY_A = "key-a-0123456789";
const as = (key: string) => ({ authorization: `Bearer ${key}` });

interface Reply {
  status: number;
  body: string;
}

/** One request with exactly this request target (no normalisation by a client library). */
function raw(port: number, method: string, target: string, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: `127.0.0.1:${port}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    const req = http.request({ host: "127.0.0.1", port, method, path: target, headers }, (res) => {
      if (String(res.headers["content-type"]).includes("text/event-stream")) {
        // an event stream that opened: the check was skipped; do not wait for its end
        resolve({ status: res.statusCode ?? 0, body: "(event stream opened)" });
        req.destroy();
        return;
      }
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${target} timed out`)));
    req.end(body);
  });
}

const hex = (c: string) => (c.codePointAt(0) ?? 0).toString(16);

/** The spellings of one path an attacker tries: each routes to the same handler. */
function spellings(p: string): Record<string, string> {
  const [, first = "", ...rest] = p.split("/");
  const tail = rest.length > 0 ? `/${rest.join("/")}` : "";
  const encodedFirst = `/%${hex(first[0] ?? "a")}${first.slice(1)}${tail}`;
  // every letter of the first segment encoded, hex digits alternating upper and lower case
  const mixed = `/${[...first]
    .map((c, i) => `%${i % 2 ? hex(c).toUpperCase() : hex(c).toLowerCase()}`)
    .join("")}${tail}`;
  // the last letter of the last static segment encoded with an upper-case hex digit
  const lastStatic = p.lastIndexOf("/");
  const seg = p.slice(lastStatic + 1);
  const encodedLast = /^[a-z]+$/.test(seg)
    ? `${p.slice(0, lastStatic + 1)}${seg.slice(0, -1)}%${hex(seg.at(-1) as string).toUpperCase()}`
    : p;
  return {
    plain: p,
    "percent-encoded": encodedFirst,
    "mixed-case-encoded": mixed,
    "encoded last": encodedLast,
    "absolute-form": `http://x${p}`,
    "absolute-form, encoded": `http://example.com${encodedFirst}`,
  };
}

describe("API keys cannot be skipped", () => {
  let h: Harness;
  let port: number;
  let id: string;
  let body: string;
  beforeAll(async () => {
    h = await makeHarness({ config: { apiKeys: [KEY_A] }, command: fakeEngine({ FAKE_STEP_MS: "5" }) });
    body = JSON.stringify({ input_image: await pngDataUri(), prompt: "p", num_inference_steps: 4 });
    const res = await h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      headers: { ...as(KEY_A), "content-type": "application/json" },
      payload: body,
    });
    id = res.json().generations[0].generation_id;
    await waitFor(() => h.store.get(id)?.status === "succeeded", 30_000, "A's generation");
    await h.app.listen({ host: "127.0.0.1", port: 0 });
    port = (h.app.server.address() as { port: number }).port;
  });
  afterAll(async () => h?.close());

  // Every route but the open ones; the list is checked against the OpenAPI document below.
  const protectedRoutes = (): Array<[string, string, string | undefined]> => [
    ["POST", "/api/ai/images/edit", body],
    ["POST", "/api/ai/images/generate", '{"prompt":"p"}'],
    ["POST", "/api/ai/queue", body],
    ["GET", "/api/ai/queue?status=all", undefined],
    ["GET", `/api/ai/queue/${id}`, undefined],
    ["DELETE", `/api/ai/queue/${id}`, undefined],
    ["GET", `/api/ai/queue/${id}/events`, undefined],
    ["GET", `/api/ai/queue/${id}/preview`, undefined],
    ["GET", "/api/events", undefined],
    ["GET", "/api/ai/models", undefined],
    ["GET", "/api/ai/models/flux-kontext-dev", undefined],
    ["GET", "/api/ai/models/flux-kontext-dev/loras", undefined],
    ["GET", "/api/history", undefined],
    ["GET", `/api/history/${id}/input`, undefined],
    ["GET", `/api/history/${id}/thumbnail`, undefined],
    ["GET", `/api/history/${id}/input/thumbnail`, undefined],
    ["GET", `/api/history/${id}/inputs/input_image_2`, undefined],
    ["GET", `/api/history/${id}/inputs/input_image_2/thumbnail`, undefined],
    ["PATCH", `/api/history/${id}`, '{"starred":true}'],
    ["DELETE", `/api/history/${id}`, undefined],
    ["GET", "/metrics", undefined],
    ["POST", "/v1/images/edits", undefined],
    ["POST", "/v1/images/generations", '{"prompt":"p"}'],
    ["GET", "/v1/models", undefined],
    ["GET", "/v1/models/flux-kontext-dev", undefined],
  ];

  it("lists every route of the OpenAPI document that is not open", () => {
    const doc = JSON.parse(readFileSync(path.join(here, "../openapi.json"), "utf8")) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const tested = new Set(
      protectedRoutes().map(
        ([m, p]) =>
          `${m} ${(p.split("?")[0] as string)
            .replace(id, ":id")
            .replace("flux-kontext-dev", ":id")
            .replace("/inputs/input_image_2", "/inputs/:field")}`,
      ),
    );
    for (const [p, methods] of Object.entries(doc.paths)) {
      const route = p.replace(/\{(\w+)\}/g, ":$1");
      if (OPEN_ROUTES.has(route)) continue;
      for (const m of Object.keys(methods)) {
        expect(tested).toContain(`${m.toUpperCase()} ${route}`);
      }
    }
  });

  it("answers 401 on every protected route in every spelling, and shows no generation", async () => {
    const failures: string[] = [];
    for (const [method, p, payload] of protectedRoutes()) {
      for (const [how, target] of Object.entries(spellings(p))) {
        const r = await raw(
          port,
          method,
          target,
          method === "GET" || method === "DELETE" ? undefined : payload,
        );
        if (r.status !== 401 || r.body.includes(id))
          failures.push(`${method} ${target} (${how}): ${r.status}`);
      }
    }
    expect(failures).toEqual([]);
    expect(h.store.get(id)?.status).toBe("succeeded"); // the DELETEs cancelled or deleted nothing
    expect(h.store.get(id)?.starred).toBe(false); // nor did the PATCH star it
    expect(h.store.list({ statuses: ["queued", "processing", "succeeded"], limit: 10 })).toHaveLength(1);
  });

  it("still serves the open routes without a key, and the protected ones with it", async () => {
    expect((await raw(port, "GET", "/healthz")).status).toBe(200);
    expect((await raw(port, "GET", "/%68ealthz")).status).toBe(200);
    expect((await raw(port, "GET", "/openapi.json")).status).toBe(200);
    const own = await h.app.inject({ url: `/api/ai/queue/${id}`, headers: as(KEY_A) });
    expect(own.statusCode).toBe(200);
    const encoded = await h.app.inject({ url: `/%61pi/ai/queue/${id}`, headers: as(KEY_A) });
    expect(encoded.statusCode).toBe(200);
  });

  it("fails closed: with keys on, a request without an identified caller sees nothing", () => {
    const ctx = { keys: { enabled: true } } as unknown as AppContext;
    const g = { id: "g", owner: null } as unknown as Generation;
    const anonymous = { owner: null } as FastifyRequest;
    expect(visibleTo(ctx, anonymous, g)).toBe(false);
    expect(visibleTo(ctx, anonymous, { ...g, owner: "k" })).toBe(false);
    const keysOff = { keys: { enabled: false } } as unknown as AppContext;
    expect(visibleTo(keysOff, anonymous, { ...g, owner: "k" })).toBe(true);
  });
});
