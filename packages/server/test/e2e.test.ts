// End to end: every API flow against the real engine on the tiny model (random weights, CPU),
// and the engine killed mid-job. Jobs use 4 steps where they can (~2 s each on CPU).
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { defineFlows } from "./flows.js";
import { type Harness, makeHarness, pngDataUri, realEngine, waitFor } from "./helpers.js";

const command = realEngine(inject("python"), inject("tinyModelDir"));

defineFlows("e2e flows (real engine, tiny model)", {
  make: () => makeHarness({ command }),
  quickSteps: 4,
  longSteps: 50,
  realSizes: true,
});

describe("e2e: engine killed mid-job (real engine)", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await makeHarness({ command });
  });
  afterAll(async () => h?.close());

  it("retries the job on a restarted engine; a second kill fails it with a reason; the next job succeeds", async () => {
    const payload = { input_image: await pngDataUri(), prompt: "p", num_inference_steps: 50 };
    const submit = async () =>
      (await h.app.inject({ method: "POST", url: "/api/ai/queue", payload })).json().generations[0]
        .generation_id as string;
    const running = (id: string, attempt: number) => () => {
      const g = h.store.get(id);
      return g?.status === "processing" && g.step >= 1 && g.attempts === attempt;
    };

    // One kill: the job is retried on the restarted engine and succeeds.
    const a = await submit();
    await waitFor(running(a, 1), 60_000, "first attempt running");
    const pid = h.engine.status()[0]?.pid;
    h.engine.killEngine(0);
    await waitFor(running(a, 2), 60_000, "second attempt running");
    expect(h.engine.status()[0]?.pid).not.toBe(pid);
    h.queue.cancel(a); // 50 steps on CPU is long; a cancel proves the retried run is live
    await waitFor(() => h.store.get(a)?.status === "cancelled", 60_000, "cancelled");

    // Two kills: failed, with the reason.
    const b = await submit();
    await waitFor(running(b, 1), 60_000, "b first attempt");
    h.engine.killEngine(0);
    await waitFor(running(b, 2), 60_000, "b second attempt");
    h.engine.killEngine(0);
    await waitFor(() => h.store.get(b)?.status === "failed", 60_000, "b failed");
    const failed = (await h.app.inject({ url: `/api/ai/queue/${b}` })).json();
    expect(failed.error_code).toBe("engine_crashed");
    expect(failed.error_message).toMatch(/SIGKILL.*already retried/);

    // The engine is back and the next job succeeds.
    const ok = await h.app.inject({
      method: "POST",
      url: "/api/ai/images/edit",
      payload: { ...payload, num_inference_steps: 4 },
    });
    expect(ok.statusCode, ok.body).toBe(200);
    const health = (await h.app.inject({ url: "/healthz" })).json();
    expect(health.engines[0].restarts).toBe(3);
  });
});
