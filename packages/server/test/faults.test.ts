// Faults, each bounded in count and time, loopback only: the server process killed -9 while it
// writes job rows (repeated), SIGTERM (graceful stop), the engine SIGKILLed at random steps (real
// engine, tiny model), input URLs that never answer or trickle, clients that leave mid-stream.
// Each must end with no job lost or stuck, and a clear reason where one fails.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer as createHttpServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  fakeEngine,
  freePort,
  type Harness,
  here,
  makeHarness,
  pngDataUri,
  poll,
  realEngine,
  type ServerProcess,
  startServer,
  waitFor,
  waitHealthy,
} from "./helpers.js";

/** main.ts as `npm start` runs it, with the fake engine standing in for Python. */
function startFakeServer(dataDir: string, port: number, env: Record<string, string> = {}): ServerProcess {
  return startServer({
    dataDir,
    port,
    env: {
      KONTEXT_MODEL_DIR: dataDir, // not read by the fake engine
      KONTEXT_PYTHON: path.join(here, "fixtures/fake-python.sh"),
      FAKE_NODE: process.execPath,
      KONTEXT_ENGINE_RESTART_DELAY_MS: "50",
      ...env,
    },
  });
}

const getJson = async (url: string) => (await (await fetch(url)).json()) as Record<string, unknown>;

async function waitAllFinal(base: string, ids: string[], timeoutMs: number): Promise<Record<string, string>> {
  const statusesNow = async () => {
    const statuses: Record<string, string> = {};
    for (const id of ids) statuses[id] = String((await getJson(`${base}/api/ai/queue/${id}`)).status);
    return statuses;
  };
  return poll(
    statusesNow,
    (st) => Object.values(st).every((x) => ["succeeded", "failed", "cancelled"].includes(x)),
    `generations ${ids.length} to end`,
    { timeoutMs, intervalMs: 100 },
  );
}

/** Waits until a generation is processing with at least one step done. */
const untilRunning = (base: string, id: string) =>
  poll(
    () => getJson(`${base}/api/ai/queue/${id}`),
    (g) => g.status === "processing" && Number(g.step) >= 1,
    `${id} to run a step`,
    { timeoutMs: 60_000, intervalMs: 50 },
  );

describe("server process faults (fake engine)", () => {
  let dataDir: string;
  let image: string;
  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), "kontext-faults-"));
    image = await pngDataUri(32, 32);
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it("kill -9 while job rows are written, 4 times over: every acknowledged generation is kept and completes", async () => {
    const port = await freePort();
    const acked: string[] = [];
    for (let round = 0; round < 4; round++) {
      const s = startFakeServer(dataDir, port);
      await waitHealthy(s);
      let killed = false;
      // 6 clients submit as fast as they can while the server is killed at a random moment.
      const clients = Array.from({ length: 6 }, async () => {
        while (!killed) {
          try {
            const res = await fetch(`${s.url}/api/ai/queue`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({
                input_image: image,
                prompt: `round ${round}`,
                num_inference_steps: 4,
                num_generations: 1 + Math.floor(Math.random() * 4),
              }),
            });
            const body = (await res.json()) as { generations?: Array<{ generation_id: string }> };
            if (res.status === 200) acked.push(...(body.generations ?? []).map((g) => g.generation_id));
          } catch {
            return; // the server died under this request: it was never acknowledged
          }
        }
      });
      await new Promise((r) => setTimeout(r, 300 + Math.random() * 700));
      s.proc.kill("SIGKILL");
      killed = true;
      await s.exited;
      await Promise.all(clients);
    }
    expect(acked.length).toBeGreaterThan(20);

    const s = startFakeServer(dataDir, port);
    try {
      await waitHealthy(s);
      const statuses = await waitAllFinal(s.url, acked, 120_000);
      expect(new Set(Object.values(statuses))).toEqual(new Set(["succeeded"]));
      console.log(
        `kill -9 ×4 while writing: ${acked.length} acknowledged generations, all kept and succeeded`,
      );
    } finally {
      s.proc.kill("SIGTERM");
      expect(await s.exited).toBe(0);
    }
    const db = new Database(path.join(dataDir, "kontext.db"), { readonly: true });
    expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    db.close();
    const parts = readdirSync(dataDir, { recursive: true }).filter((f) => String(f).endsWith(".part"));
    expect(parts).toEqual([]);
  }, 180_000);

  it("SIGTERM: takes no new work, lets the running generation finish, keeps the queued ones for the restart", async () => {
    const port = await freePort();
    const env = { FAKE_STEP_MS: "100", KONTEXT_SHUTDOWN_GRACE_S: "30" };
    let s = startFakeServer(dataDir, port, env);
    await waitHealthy(s);
    const submit = async (steps: number) => {
      const res = await fetch(`${s.url}/api/ai/queue`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ input_image: image, prompt: "graceful", num_inference_steps: steps }),
      });
      return {
        status: res.status,
        body: (await res.json()) as {
          generations: Array<{ generation_id: string }>;
          error: { type: string };
        },
      };
    };
    const running = (await submit(15)).body.generations[0]?.generation_id as string;
    const queued = [
      (await submit(4)).body.generations[0]?.generation_id as string,
      (await submit(4)).body.generations[0]?.generation_id as string,
    ];
    await untilRunning(s.url, running);
    s.proc.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 200));
    const refused = await submit(4);
    expect(refused.status).toBe(503);
    expect(refused.body.error.type).toBe("shutting_down");
    expect((await fetch(`${s.url}/healthz`)).status).toBe(503);
    expect(await s.exited).toBe(0); // after the running one finished
    expect(s.log.join("")).toMatch(/SIGTERM: stopping; 1 running generation/);

    // Short grace: a long job is cut off and runs again after the restart, not counted as a failure.
    s = startFakeServer(dataDir, port, { ...env, KONTEXT_SHUTDOWN_GRACE_S: "1" });
    await waitHealthy(s);
    const rerun = await getJson(`${s.url}/api/ai/queue/${running}`);
    expect(rerun.status).toBe("succeeded");
    const long = (await submit(50)).body.generations[0]?.generation_id as string;
    await untilRunning(s.url, long);
    s.proc.kill("SIGTERM");
    expect(await s.exited).toBe(0);
    expect(s.log.join("")).toMatch(/grace period over: 1 generation/);

    s = startFakeServer(dataDir, port, { FAKE_STEP_MS: "5" });
    try {
      await waitHealthy(s);
      const statuses = await waitAllFinal(s.url, [...queued, long], 60_000);
      expect(Object.values(statuses)).toEqual(["succeeded", "succeeded", "succeeded"]);
      expect((await getJson(`${s.url}/api/ai/queue/${long}`)).attempts).toBe(1);
    } finally {
      s.proc.kill("SIGTERM");
      await s.exited;
    }
  }, 180_000);
});

describe("engine SIGKILLed at random steps (real engine, tiny model)", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await makeHarness({ command: realEngine(inject("python"), inject("tinyModelDir")) });
  });
  afterAll(async () => h?.close());

  it("retries each killed generation on the restarted engine: all 3 succeed", async () => {
    const image = await pngDataUri(48, 32);
    const killedAt: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await h.app.inject({
        method: "POST",
        url: "/api/ai/queue",
        payload: { input_image: image, prompt: `kill ${i}`, num_inference_steps: 6, seed: i },
      });
      const id = res.json().generations[0].generation_id as string;
      const step = Math.floor(Math.random() * 6); // 0: before the first step (text and VAE encode)
      await waitFor(
        async () => {
          const g = await h.queue.get(id); // its latest step (the row is written once a second)
          return g?.status === "processing" && g.step >= step;
        },
        120_000,
        `generation ${i} at step ${step}`,
      );
      killedAt.push((await h.queue.get(id))?.step ?? -1);
      h.engine.killEngine(0);
      await waitFor(
        () => h.store.get(id)?.status === "succeeded" || h.store.get(id)?.status === "failed",
        180_000,
        `generation ${i} done`,
      );
      const g = h.store.get(id);
      expect(g?.status, g?.errorMessage ?? "").toBe("succeeded");
      expect(g?.attempts).toBe(2);
      expect(
        h.store.eventsOf(id).some((e) => e.event === "media_generation_queued" && e.data.retry === true),
      ).toBe(true);
    }
    console.log(`engine killed at steps ${killedAt.join(", ")} of 6; every generation retried and succeeded`);
  }, 400_000);
});

describe("slow input URLs and clients that leave (fake engine)", () => {
  let h: Harness;
  let slow: Server;
  let base: string;
  let app: string;
  beforeAll(async () => {
    const png = Buffer.from((await pngDataUri()).split(",")[1] as string, "base64");
    slow = createHttpServer((req, res) => {
      if (req.url === "/never") return; // accepts, never answers
      if (req.url === "/trickle") {
        res.writeHead(200, { "content-type": "image/png", "content-length": String(png.length) });
        let i = 0;
        const t = setInterval(() => {
          if (i >= png.length || res.destroyed) return clearInterval(t);
          res.write(png.subarray(i, i + 1)); // one byte every 100 ms: the whole image would take minutes
          i++;
        }, 100);
        return;
      }
      res.writeHead(200, { "content-type": "image/png" }).end(png);
    });
    await new Promise<void>((r) => slow.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
    h = await makeHarness({
      config: { fetchAllow: ["127.0.0.1"], fetchTimeoutMs: 1000 },
      command: fakeEngine({ FAKE_STEP_MS: "50" }),
    });
    await h.app.listen({ host: "127.0.0.1", port: 0 });
    app = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await h?.close();
    slow.closeAllConnections();
    await new Promise((r) => slow.close(r));
  });

  it("an input URL that never answers or trickles fails in the fetch time limit; other requests go on", async () => {
    const post = (input_image: string) =>
      fetch(`${app}/api/ai/queue`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ input_image, prompt: "p", num_inference_steps: 4 }),
      });
    const before = h.store.list({
      statuses: ["queued", "processing", "succeeded", "failed"],
      limit: 1000,
    }).length;
    const [never, trickle, fine] = await Promise.all([
      post(`${base}/never`),
      post(`${base}/trickle`),
      post(`${base}/ok.png`),
    ]);
    for (const res of [never, trickle]) {
      expect(res.status).toBe(422);
      const body = (await res.json()) as { error: { type: string; detail: string } };
      expect(body.error.type).toBe("input_image_fetch_failed");
      expect(body.error.detail).toMatch(/timed out \(KONTEXT_FETCH_TIMEOUT_MS\)/);
    }
    expect(fine.status).toBe(200);
    // only the good one became a generation: nothing half-made is left queued
    expect(
      h.store.list({ statuses: ["queued", "processing", "succeeded", "failed"], limit: 1000 }).length,
    ).toBe(before + 1);
  });

  it("a client that disconnects mid-stream does not lose its generation, nor leave listeners behind", async () => {
    const listeners = h.queue.listenerCount("event");
    const body = JSON.stringify({ input_image: await pngDataUri(), prompt: "p", num_inference_steps: 12 });
    const id = await new Promise<string>((resolve, reject) => {
      const req = request(`${app}/api/ai/images/edit`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream" },
      });
      req.on("response", (res) => {
        let text = "";
        res.on("data", (c: Buffer) => {
          text += c.toString();
          const m = /"generation_id":"([^"]+)"/.exec(text);
          if (m?.[1] && text.includes("media_generation_progress")) {
            req.destroy(); // gone mid-stream
            resolve(m[1]);
          }
        });
      });
      req.on("error", () => undefined);
      req.end(body);
      setTimeout(() => reject(new Error("no progress event")), 20_000);
    });
    await waitFor(() => h.store.get(id)?.status === "succeeded", 20_000, "the generation");
    await waitFor(() => h.queue.listenerCount("event") === listeners, 5_000, "listeners released");
    // and a reconnecting client gets the rest from Last-Event-ID
    const res = await fetch(`${app}/api/ai/queue/${id}/events`, { headers: { "last-event-id": "1" } });
    expect(await res.text()).toContain("event: media_generation_completed");
  });
});
