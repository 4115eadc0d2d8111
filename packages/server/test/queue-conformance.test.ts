// One suite, every JobQueue backend: the embedded SQLite queue and BullMQ on a real Redis
// (test/redis.ts starts Debian's redis-server). The API flows (flows.ts) and the queue's own
// contract run unchanged against both, with the fake engine.
import { afterEach, describe, expect, it } from "vitest";
import { ApiError } from "../src/errors.js";
import type { StoredEvent } from "../src/jobs/types.js";
import { forEachBackend, type QueueHarness } from "./backends.js";
import { defineFlows } from "./flows.js";
import { fakeEngine, parseSse, pngDataUri, poll, waitFor } from "./helpers.js";

forEachBackend((backend, make) => {
  defineFlows(`flows on the ${backend} queue (fake engine)`, {
    make: () => make({ command: fakeEngine({ FAKE_STEP_MS: "5" }) }),
    quickSteps: 4,
    longSteps: 50,
    realSizes: false,
  });

  describe(`JobQueue conformance: ${backend}`, () => {
    let h: QueueHarness | null = null;
    afterEach(async () => {
      await h?.close();
      h = null;
    });
    const post = async (q: QueueHarness, payload: Record<string, unknown>, headers = {}) =>
      q.app.inject({ method: "POST", url: "/api/ai/queue", payload, headers });
    const body = async (extra: Record<string, unknown> = {}) => ({
      input_image: await pngDataUri(),
      prompt: "make it blue",
      num_inference_steps: 4,
      ...extra,
    });

    it("writes queued generations before answering, with positions, in lists, history and depth", async () => {
      const q = await make({ command: fakeEngine({ FAKE_STEP_MS: "40" }) });
      h = q;
      const ids: string[] = [];
      for (let i = 0; i < 3; i++)
        ids.push(
          (await post(q, await body({ num_inference_steps: 50 }))).json().generations[0].generation_id,
        );
      const first = await poll(
        () => q.queue.get(ids[0] as string),
        (g) => g?.status === "processing",
        "the first to be processing",
      );
      expect(first?.status).toBe("processing");
      expect(first?.queuePosition).toBeNull();
      const rest = await Promise.all(ids.slice(1).map((id) => q.queue.get(id)));
      expect(rest.map((g) => [g?.status, g?.queuePosition])).toEqual([
        ["queued", 0],
        ["queued", 1],
      ]);
      expect(await q.queue.depth()).toEqual({ queued: 2, processing: 1 });
      const active = await q.queue.list({ statuses: ["queued", "processing"], limit: 10 });
      expect(active.map((g) => g.id)).toEqual([...ids].reverse()); // newest first
      const hist = await q.queue.history({ limit: 2 });
      expect(hist.map((g) => g.id)).toEqual([ids[2], ids[1]]);
      const older = await q.queue.history({ limit: 10, before: hist[1]?.seq as number });
      expect(older.map((g) => g.id)).toEqual([ids[0]]);
      expect((await q.queue.history({ limit: 10, query: "MAKE IT" })).length).toBe(3);
      expect((await q.queue.history({ limit: 10, query: "nothing like it" })).length).toBe(0);
      expect((await q.queue.eventsOf(ids[2] as string))[0]?.event).toBe("media_generation_queued");
      expect(await q.queue.countActiveOf(null)).toBe(3);
      for (const id of ids) await q.queue.cancel(id);
      for (const id of ids) expect((await q.queue.waitFor(id)).status).toBe("cancelled");
    });

    it("announces each event once, in id order; replays from any id; waitFor ends with the result", async () => {
      const q = await make({ command: fakeEngine({ FAKE_STEP_MS: "5" }) });
      h = q;
      const seen: StoredEvent[] = [];
      q.queue.on("event", (e) => seen.push(e));
      const before = (await q.queue.completedEventsSince(0)).at(-1)?.id ?? 0;
      const id = (await post(q, await body())).json().generations[0].generation_id as string;
      const done = await q.queue.waitFor(id);
      expect(done.status).toBe("succeeded");
      expect(q.queue.resultUrlPath(done)).toMatch(/^\/results\/.+\.webp$/);
      await waitFor(() =>
        seen.some((e) => e.generationId === id && e.event === "media_generation_completed"),
      );
      const mine = seen.filter((e) => e.generationId === id);
      expect(mine.map((e) => e.event)).toEqual([
        "media_generation_queued",
        "media_generation_started",
        ...Array(4).fill("media_generation_progress"),
        "media_generation_completed",
      ]);
      const ids = mine.map((e) => e.id);
      expect([...ids].sort((a, b) => a - b)).toEqual(ids);
      expect(new Set(ids).size).toBe(ids.length);
      const stored = await q.queue.eventsOf(id);
      expect(stored.map((e) => e.id)).toEqual(ids);
      expect((await q.queue.eventsOf(id, ids[3])).map((e) => e.id)).toEqual(ids.slice(4));
      const completed = await q.queue.completedEventsSince(before);
      expect(completed.map((e) => e.generationId)).toContain(id);
      expect(completed.find((e) => e.generationId === id)?.data).toMatchObject({
        status: "succeeded",
        url: q.queue.resultUrlPath(done),
      });
    });

    it("cancels: queued at once, processing between steps; a finished one is 409, an unknown one 404", async () => {
      const q = await make({ command: fakeEngine({ FAKE_STEP_MS: "40" }) });
      h = q;
      const running = (await post(q, await body({ num_inference_steps: 50 }))).json().generations[0]
        .generation_id;
      const waiting = (await post(q, await body())).json().generations[0].generation_id;
      await poll(
        () => q.queue.get(running),
        (g) => g?.status === "processing" && g.step >= 1,
        `${running} to run a step`,
      );
      expect((await q.queue.cancel(waiting)).status).toBe("cancelled");
      await q.queue.cancel(running);
      const g = await q.queue.waitFor(running);
      expect(g.status).toBe("cancelled");
      expect(g.step).toBeLessThan(50);
      await expect(q.queue.cancel(running)).rejects.toMatchObject({ code: "generation_finished" });
      const unknown = await q.queue.cancel("no-such-id").catch((err: unknown) => err);
      expect(unknown).toBeInstanceOf(ApiError);
      expect(unknown).toMatchObject({ code: "generation_not_found", status: 404 });
    });

    it("retries a generation once when its engine dies, then fails it with the reason", async () => {
      const q = await make({ command: fakeEngine({ FAKE_STEP_MS: "40" }) });
      h = q;
      const id = (await post(q, await body({ num_inference_steps: 50 }))).json().generations[0].generation_id;
      for (let attempt = 1; attempt <= 2; attempt++) {
        await poll(
          () => q.queue.get(id),
          (g) => g?.status === "processing" && g.step >= 1 && g.attempts === attempt,
          `attempt ${attempt} to run a step`,
          { timeoutMs: 15_000 },
        );
        q.engine.killEngine(0);
      }
      const g = await q.queue.waitFor(id);
      expect(g.status).toBe("failed");
      expect(g.errorCode).toBe("engine_crashed");
      expect(g.errorMessage).toMatch(/SIGKILL.*already retried 1 time/);
    });

    it("streams a queued generation's position each time it changes; a late stream starts at the current one", async () => {
      const q = await make({ command: fakeEngine({ FAKE_STEP_MS: "30" }) });
      h = q;
      const submitted = async (steps: number) =>
        (await post(q, await body({ num_inference_steps: steps }))).json().generations[0]
          .generation_id as string;
      const until = (id: string, status: string) =>
        poll(
          () => q.queue.get(id),
          (g) => g?.status === status,
          `${id} to be ${status}`,
          {
            timeoutMs: 15_000,
            intervalMs: 10,
          },
        );
      const slow = await submitted(20);
      await until(slow, "processing");
      const a = await submitted(15);
      await submitted(4); // b
      const c = await submitted(4);
      const events = (url: string, headers: Record<string, string> = {}) =>
        q.app.inject({ url, headers }).then((r) => parseSse(r.body));
      const queuedOf = (evs: ReturnType<typeof parseSse>) =>
        evs.filter((e) => e.event === "media_generation_queued");
      const positions = (evs: ReturnType<typeof parseSse>) =>
        queuedOf(evs).map((e) => (e.data as { queue_position: number }).queue_position);
      const early = events(`/api/ai/queue/${c}/events`); // resolves when c's stream ends
      await until(a, "processing"); // only b is ahead of c now
      const storedQueued = (await q.queue.eventsOf(c))[0];
      const late = events(`/api/ai/queue/${c}/events`);
      const resumed = events(`/api/ai/queue/${c}/events`, { "last-event-id": String(storedQueued?.id) });

      const all = await early;
      expect(positions(all)).toEqual([2, 1, 0]);
      // The stored queued event keeps its id; position updates are not stored and carry none.
      expect(queuedOf(all).map((e) => e.id)).toEqual([String(storedQueued?.id), undefined, undefined]);
      const names = all.map((e) => e.event);
      expect(names.lastIndexOf("media_generation_queued")).toBeLessThan(
        names.indexOf("media_generation_started"),
      );
      expect(names.at(-1)).toBe("media_generation_completed");

      const lateEvents = await late;
      expect(positions(lateEvents)).toEqual([1, 0]); // never the 2 it was stored with
      expect(lateEvents[0]?.id).toBe(String(storedQueued?.id));
      const resumedEvents = await resumed;
      expect(positions(resumedEvents)).toEqual([1, 0]);
      expect(resumedEvents[0]?.id).toBeUndefined();
      expect(resumedEvents.at(-1)?.event).toBe("media_generation_completed");
    });

    it("answers 429 with Retry-After when the queue is full", async () => {
      const q = await make({ config: { maxQueue: 2 }, command: fakeEngine({ FAKE_STEP_MS: "50" }) });
      h = q;
      // the first runs; the second and third fill the queue (2); the fourth is refused
      const first = await post(q, await body({ num_inference_steps: 50 }));
      const id = first.json().generations[0].generation_id as string;
      await poll(
        () => q.queue.get(id),
        (g) => g?.status === "processing",
        `${id} to be processing`,
      );
      const codes = [first.statusCode];
      let refused: Awaited<ReturnType<typeof post>> | undefined;
      for (let i = 0; i < 3; i++) {
        const res = await post(q, await body({ num_inference_steps: 50 }));
        codes.push(res.statusCode);
        if (res.statusCode === 429) refused = res;
      }
      expect(codes).toEqual([first.statusCode, first.statusCode, first.statusCode, 429]);
      expect(refused?.json().error.type).toBe("queue_full");
      expect(Number(refused?.headers["retry-after"])).toBeGreaterThan(0);
    });

    it("Idempotency-Key: the same key and body give the same generations; another body is 409", async () => {
      const q = await make({ command: fakeEngine({ FAKE_STEP_MS: "5" }) });
      h = q;
      const b = await body({ num_generations: 2 });
      const a1 = await post(q, b, { "idempotency-key": "k-1" });
      const a2 = await post(q, b, { "idempotency-key": "k-1" });
      expect(a1.statusCode, a1.body).toBe(200);
      expect(a2.json().generations.map((g: { generation_id: string }) => g.generation_id)).toEqual(
        a1.json().generations.map((g: { generation_id: string }) => g.generation_id),
      );
      const other = await post(q, { ...b, prompt: "something else" }, { "idempotency-key": "k-1" });
      expect(other.statusCode).toBe(409);
    });
  });
});
