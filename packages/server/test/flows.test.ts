// Every API flow against the fake engine (fast), plus what only a test double can provoke.
import { afterEach, describe, expect, it } from "vitest";
import { defineFlows } from "./flows.js";
import { fakeEngine, type Harness, makeHarness, pngDataUri, poll, waitFor } from "./helpers.js";

defineFlows("flows (fake engine)", {
  make: () => makeHarness({ command: fakeEngine({ FAKE_STEP_MS: "5" }) }),
  quickSteps: 4,
  longSteps: 50,
  realSizes: false,
});

describe("queue limits and failures (fake engine)", () => {
  let h: Harness | null = null;
  afterEach(async () => {
    await h?.close();
    h = null;
  });

  it("answers 429 with Retry-After when the queue is full", async () => {
    h = await makeHarness({ config: { maxQueue: 2 }, command: fakeEngine({ FAKE_STEP_MS: "50" }) });
    const payload = { input_image: await pngDataUri(), prompt: "p", num_inference_steps: 50 };
    // the first runs; the second and third fill the queue (2); the fourth is refused
    const first = await h.app.inject({ method: "POST", url: "/api/ai/queue", payload });
    const harness = h;
    await waitFor(() => harness.store.count("processing") === 1, 10_000, "the first to be processing");
    const codes = [first.statusCode];
    let retryAfter: string | undefined;
    for (let i = 0; i < 3; i++) {
      const res = await h.app.inject({ method: "POST", url: "/api/ai/queue", payload });
      codes.push(res.statusCode);
      if (res.statusCode === 429) {
        retryAfter = res.headers["retry-after"] as string;
        expect(res.json().error.type).toBe("queue_full");
      }
    }
    expect(codes).toEqual([first.statusCode, first.statusCode, first.statusCode, 429]);
    expect(Number(retryAfter)).toBeGreaterThan(0);
  });

  it("fails a flagged generation with the engine's reason (422 on the sync endpoint)", async () => {
    h = await makeHarness({ command: fakeEngine({ FAKE_FLAG_PROMPT: "forbidden" }) });
    const payload = {
      input_image: await pngDataUri(),
      prompt: "something forbidden",
      num_inference_steps: 4,
    };
    const res = await h.app.inject({ method: "POST", url: "/api/ai/images/edit", payload });
    expect(res.statusCode).toBe(422);
    expect(res.json().error.type).toBe("content_flagged");
    expect(res.json().error.detail).toContain("safety checker");
  });

  it("says 503 when no engine can start, naming the engine's fatal error", async () => {
    h = await makeHarness({ command: fakeEngine({ FAKE_FATAL: "1" }), waitReady: false });
    const harness = h;
    await waitFor(() => harness.engine.status().every((s) => s.state === "failed"), 10_000, "engine failed");
    const health = await h.app.inject({ url: "/healthz" });
    expect(health.statusCode).toBe(503);
    expect(health.json().engines[0].problem).toContain("load_failed");
    const res = await h.app.inject({
      method: "POST",
      url: "/api/ai/queue",
      payload: { input_image: await pngDataUri(), prompt: "p" },
    });
    expect(res.statusCode).toBe(503);
    expect(res.json().error.detail).toContain("missing vae/");
  });

  it("retries a generation once when its engine dies, then fails it with a reason", async () => {
    h = await makeHarness({ command: fakeEngine({ FAKE_STEP_MS: "40" }) });
    const harness = h;
    const payload = { input_image: await pngDataUri(), prompt: "p", num_inference_steps: 50 };
    const [gen] = (await h.app.inject({ method: "POST", url: "/api/ai/queue", payload })).json().generations;
    const step = () => harness.store.get(gen.generation_id);
    for (let attempt = 1; attempt <= 2; attempt++) {
      await waitFor(
        () => step()?.status === "processing" && (step()?.step ?? 0) >= 1 && step()?.attempts === attempt,
        10_000,
      );
      harness.engine.killEngine(0);
    }
    await waitFor(() => step()?.status === "failed", 10_000, "failed");
    expect(step()?.errorCode).toBe("engine_crashed");
    expect(step()?.errorMessage).toMatch(/exited with signal SIGKILL.*already retried 1 time/);
    await waitFor(() => harness.engine.status()[0]?.state === "idle", 10_000, "engine back");
    const ok = await h.app.inject({
      method: "POST",
      url: "/api/ai/images/edit",
      payload: { ...payload, num_inference_steps: 4 },
    });
    expect(ok.statusCode, ok.body).toBe(200);
  });

  it("runs what was queued or running when the gateway stopped, after a restart on the same data dir", async () => {
    h = await makeHarness({ command: fakeEngine({ FAKE_STEP_MS: "100" }) });
    const payload = { input_image: await pngDataUri(), prompt: "p", num_inference_steps: 50 };
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(
        (await h.app.inject({ method: "POST", url: "/api/ai/queue", payload })).json().generations[0]
          .generation_id,
      );
    }
    const harness = h;
    await waitFor(() => harness.store.count("processing") === 1);
    const dataDir = h.dataDir;
    h.queue.stop();
    await h.app.close();
    harness.engine.killEngine(0);
    await h.engine.stop();
    h.store.close();
    const again = await makeHarness({ dataDir, command: fakeEngine({ FAKE_STEP_MS: "1" }) });
    h = again;
    const ended = await poll(
      () => ids.map((id) => again.store.get(id)),
      (gs) => gs.every((g) => g?.status === "succeeded" || g?.status === "failed"),
      "all three to end after the restart",
      { timeoutMs: 20_000 },
    );
    expect(ended.map((g) => g?.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
    // each has its result stored: a file the restarted gateway reads back
    for (const g of ended) {
      expect(g?.resultFile, `${g?.id} has a result file`).toMatch(/\.\w+$/);
      expect((await again.files.readResult(g?.resultFile as string))?.length, g?.id).toBeGreaterThan(0);
    }
  });
});
