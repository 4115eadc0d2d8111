// What one caller can learn of others and of the server, and what it is told: /healthz detail
// only with a key, edit chains that never cross keys, engine errors without server paths or pids,
// event streams that end when nothing is left, and cancels that answer what will happen. Each
// runs on both queue backends.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { errorForClients } from "../src/engine/protocol.js";
import { forEachBackend, type QueueHarness } from "./backends.js";
import { fakeEngine, type Harness, makeHarness, parseSse, pngDataUri, poll, waitFor } from "./helpers.js";

const KEY_A = "key-a-0123456789";
const KEY_B = "key-b-9876543210";
const as = (key: string) => ({ authorization: `Bearer ${key}` });

forEachBackend((backend, make) => {
  describe(`between callers and towards clients: ${backend}`, () => {
    let h: QueueHarness | null = null;
    afterEach(async () => {
      await h?.close();
      h = null;
    });
    const post = (q: QueueHarness, payload: Record<string, unknown>, headers: Record<string, string> = {}) =>
      q.app.inject({ method: "POST", url: "/api/ai/queue", payload, headers });
    const body = async (extra: Record<string, unknown> = {}) => ({
      input_image: await pngDataUri(),
      prompt: "make it blue",
      num_inference_steps: 4,
      ...extra,
    });
    const statusOf = async (q: QueueHarness, id: string, key?: string) =>
      (await q.app.inject({ url: `/api/ai/queue/${id}`, headers: key ? as(key) : {} })).json() as Record<
        string,
        unknown
      >;
    const finalOf = (q: QueueHarness, id: string, key?: string) =>
      poll(
        () => statusOf(q, id, key),
        (g) => ["succeeded", "failed", "cancelled"].includes(String(g.status)),
        `generation ${id} to finish`,
        { timeoutMs: 30_000 },
      );

    it("shows engine detail on /healthz only to a caller with a key, and only its own generation ids", async () => {
      const q = await make({
        config: { apiKeys: [KEY_A, KEY_B] },
        command: fakeEngine({ FAKE_STEP_MS: "100" }),
      });
      h = q;
      const res = await post(q, await body({ num_inference_steps: 50 }), as(KEY_A));
      const id = res.json().generations[0].generation_id as string;
      // /healthz shows what the gateway knows (with Redis, the workers' beat: every 2 s)
      const shows = async (key: string) =>
        JSON.stringify((await q.app.inject({ url: "/healthz", headers: as(key) })).json()).includes(id);
      await waitFor(() => shows(KEY_A), 20_000, `/healthz to show ${id} to its owner`, { intervalMs: 50 });
      const anonymous = (await q.app.inject({ url: "/healthz" })).json();
      expect(anonymous.status).toBe("ok");
      expect(JSON.stringify(anonymous)).not.toContain(id);
      for (const e of anonymous.engines) expect(Object.keys(e).sort()).toEqual(["device", "state"]);
      const other = (await q.app.inject({ url: "/healthz", headers: as(KEY_B) })).json();
      expect(JSON.stringify(other)).not.toContain(id);
      expect(other.engines[0]).toHaveProperty("pid");
      const owner = (await q.app.inject({ url: "/healthz", headers: as(KEY_A) })).json();
      expect(owner.engines.map((e: { generation_id: string | null }) => e.generation_id)).toContain(id);
      await q.app.inject({ method: "DELETE", url: `/api/ai/queue/${id}`, headers: as(KEY_A) });
    });

    it("links an edit chain only within one key: another key's identical input starts a new chain", async () => {
      const q = await make({
        config: { apiKeys: [KEY_A, KEY_B] },
        command: fakeEngine({ FAKE_STEP_MS: "5" }),
      });
      h = q;
      const first = (await post(q, await body({ output_format: "png" }), as(KEY_A))).json().generations[0]
        .generation_id as string;
      const done = await finalOf(q, first, KEY_A);
      const bytes = (await q.app.inject({ url: new URL(done.result_url as string).pathname })).rawPayload;
      const resultUri = `data:image/png;base64,${bytes.toString("base64")}`;
      const mine = (await post(q, await body({ input_image: resultUri }), as(KEY_A))).json().generations[0]
        .generation_id as string;
      const theirs = (await post(q, await body({ input_image: resultUri }), as(KEY_B))).json().generations[0]
        .generation_id as string;
      await finalOf(q, mine, KEY_A);
      await finalOf(q, theirs, KEY_B);
      const historyOf = async (key: string) =>
        (await q.app.inject({ url: "/api/history", headers: as(key) })).json().generations as Array<{
          generation_id: string;
          parent_generation_id: string | null;
        }>;
      expect((await historyOf(KEY_A)).find((g) => g.generation_id === mine)?.parent_generation_id).toBe(
        first,
      );
      const b = await historyOf(KEY_B);
      expect(b.map((g) => g.generation_id)).toEqual([theirs]);
      expect(b[0]?.parent_generation_id).toBeNull();
    });

    it("tells clients an engine failure without server paths or pids", async () => {
      const q = await make({ command: fakeEngine({ FAKE_STEP_MS: "5", FAKE_FAIL_PROMPT: "explode" }) });
      h = q;
      const id = (await post(q, await body({ prompt: "explode now" }))).json().generations[0]
        .generation_id as string;
      const g = await finalOf(q, id);
      expect(g.status).toBe("failed");
      expect(g.error_code).toBe("internal");
      expect(String(g.error_message)).toMatch(/diffusion\.safetensors/);
      expect(String(g.error_message)).not.toMatch(/\/srv|pid \d/);
      const events = parseSse((await q.app.inject({ url: `/api/ai/queue/${id}/events` })).body);
      expect(JSON.stringify(events.at(-1))).not.toMatch(/\/srv\/models|pid \d/);
    });

    it("closes a resumed event stream of a finished generation when nothing is left to replay", async () => {
      const q = await make({ command: fakeEngine({ FAKE_STEP_MS: "5" }) });
      h = q;
      const id = (await post(q, await body())).json().generations[0].generation_id as string;
      await finalOf(q, id);
      const all = parseSse((await q.app.inject({ url: `/api/ai/queue/${id}/events` })).body);
      const last = Number(all.at(-1)?.id);
      expect(all.at(-1)?.event).toBe("media_generation_completed");
      // EventSource reconnects with exactly the last id; inject() resolves only once the stream ends
      for (const resume of [last, last + 1000]) {
        const res = await Promise.race([
          q.app.inject({ url: `/api/ai/queue/${id}/events`, headers: { "last-event-id": String(resume) } }),
          new Promise<null>((r) => setTimeout(() => r(null), 5_000)),
        ]);
        expect(res, `Last-Event-ID ${resume}`).not.toBeNull();
        expect(parseSse(res?.body ?? "")).toEqual([]);
      }
      const middle = await q.app.inject({
        url: `/api/ai/queue/${id}/events`,
        headers: { "last-event-id": String(all.at(-2)?.id) },
      });
      expect(parseSse(middle.body).map((e) => e.event)).toEqual(["media_generation_completed"]);
    });

    it("refuses a cancel once every step has run (409) and the generation then succeeds", async () => {
      const q = await make({ command: fakeEngine({ FAKE_STEP_MS: "5", FAKE_DECODE_MS: "1500" }) });
      h = q;
      const id = (await post(q, await body())).json().generations[0].generation_id as string;
      await poll(
        () => statusOf(q, id),
        (g) => g.progress === 1,
        `${id} to run every step`,
        { timeoutMs: 20_000 },
      );
      const res = await q.app.inject({ method: "DELETE", url: `/api/ai/queue/${id}` });
      expect(res.statusCode).toBe(409);
      expect(res.json().error.type).toBe("generation_finishing");
      expect((await finalOf(q, id)).status).toBe("succeeded");
    });

    it("keeps its word after a 200: a cancel the engine could not act on still ends cancelled", async () => {
      const q = await make({ command: fakeEngine({ FAKE_STEP_MS: "60", FAKE_IGNORE_CANCEL: "1" }) });
      h = q;
      const id = (await post(q, await body({ num_inference_steps: 6 }))).json().generations[0]
        .generation_id as string;
      await poll(
        () => statusOf(q, id),
        (g) => g.status === "processing",
        `${id} to be processing`,
        {
          timeoutMs: 20_000,
        },
      );
      const res = await q.app.inject({ method: "DELETE", url: `/api/ai/queue/${id}` });
      expect(res.statusCode).toBe(200);
      const g = await finalOf(q, id);
      expect(g.status).toBe("cancelled");
      expect(g.result_url ?? null).toBeNull();
    });
  });
});

describe("what reaches clients of the engine's own words", () => {
  it("maps engine codes to the catalogue and cuts paths and pids", () => {
    expect(
      errorForClients({
        code: "invalid_request",
        field: "input.path",
        message: "cannot read input file /data/inputs/ab/abc.rgb: No such file",
      }),
    ).toEqual({ code: "input_missing", message: "cannot read input file abc.rgb: No such file" });
    expect(errorForClients({ code: "malformed_message", message: "x" }).code).toBe("internal");
    expect(errorForClients({ code: "content_flagged", message: "flagged" }).code).toBe("content_flagged");
    expect(
      errorForClients({ code: "internal", message: "RuntimeError (pid 77) at /opt/k/e.py" }).message,
    ).toBe("RuntimeError at e.py");
  });
});

describe("engine log lines never reach /healthz", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await makeHarness({
      waitReady: false,
      command: () => ({
        file: process.execPath,
        args: ["-e", "console.error('Traceback: /srv/secret/models/flux/vae failed'); process.exit(1)"],
        cwd: process.cwd(),
      }),
    });
  });
  afterAll(async () => h?.close());

  it("says the engine exited, and keeps its traceback for the server's log", async () => {
    await waitFor(() => h.engine.status().some((e) => e.problem !== null), 20_000, "the engine to fail");
    const health = (await h.app.inject({ url: "/healthz" })).json();
    expect(health.engines[0].problem).toMatch(/exited with status 1/);
    expect(JSON.stringify(health)).not.toContain("/srv/secret");
  });
});
