// Load, on the real engine with the tiny model, over loopback HTTP: 200 submissions at once
// against a queue capped at 4. Beyond the cap each gets 429 with Retry-After at once; every
// accepted generation completes. Status polls run throughout; their latency is printed (figures
// for docs/reliability.md, never asserted).
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Harness, makeHarness, pngDataUri, realEngine, waitFor } from "./helpers.js";

const SUBMITS = 200;
const QUEUE_CAP = 4;
const POLLERS = 8;

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;

describe("load: 200 concurrent submissions (real engine, tiny model)", () => {
  let h: Harness;
  let base: string;
  beforeAll(async () => {
    h = await makeHarness({
      config: { maxQueue: QUEUE_CAP },
      command: realEngine(inject("python"), inject("tinyModelDir")),
    });
    await h.app.listen({ host: "127.0.0.1", port: 0 });
    base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => h?.close());

  it("accepts up to the cap, refuses the rest with 429 + Retry-After, completes every accepted one", async () => {
    const body = JSON.stringify({
      input_image: await pngDataUri(64, 48),
      prompt: "load",
      num_inference_steps: 4,
    });
    const t0 = performance.now();
    const answers = await Promise.all(
      Array.from({ length: SUBMITS }, async () => {
        const start = performance.now();
        const res = await fetch(`${base}/api/ai/queue`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        const json = (await res.json()) as { generations?: Array<{ generation_id: string }> };
        return {
          status: res.status,
          retryAfter: res.headers.get("retry-after"),
          id: json.generations?.[0]?.generation_id,
          ms: performance.now() - start,
        };
      }),
    );
    const submitMs = performance.now() - t0;
    const accepted = answers.filter((a) => a.status === 200).map((a) => a.id as string);
    const refused = answers.filter((a) => a.status === 429);
    expect(accepted.length + refused.length).toBe(SUBMITS); // nothing else: no 5xx, no error
    expect(accepted.length).toBeGreaterThanOrEqual(QUEUE_CAP);
    expect(accepted.length).toBeLessThanOrEqual(QUEUE_CAP + 1); // the cap, plus one the engine took at once
    for (const r of refused) expect(Number(r.retryAfter)).toBeGreaterThan(0);

    // Pollers ask for the status of accepted generations until all are final.
    const pollMs: number[] = [];
    let done = false;
    const pollers = Array.from({ length: POLLERS }, async (_, p) => {
      let failures = 0;
      for (let i = p; !done; i++) {
        const start = performance.now();
        try {
          const res = await fetch(`${base}/api/ai/queue/${accepted[i % accepted.length]}`);
          await res.json();
          if (res.status !== 200) failures++;
        } catch {
          failures++;
        }
        pollMs.push(performance.now() - start);
        await new Promise((r) => setTimeout(r, 20));
      }
      return failures;
    });
    const stuck = () =>
      accepted.map((id) => h.store.get(id)).find((g) => g?.status === "failed" || g?.status === "cancelled");
    await waitFor(
      () => accepted.every((id) => h.store.get(id)?.status === "succeeded"),
      240_000,
      "accepted generations to complete",
      {
        intervalMs: 200,
        giveUpIf: () => {
          const g = stuck();
          return g ? `generation ${g.id} ${g.status}: ${g.errorMessage}` : null;
        },
      },
    );
    const allMs = performance.now() - t0;
    done = true;
    expect(await Promise.all(pollers)).toEqual(Array(POLLERS).fill(0)); // every poll answered 200

    const sorted = [...pollMs].sort((a, b) => a - b);
    const refusedMs = refused.map((r) => r.ms).sort((a, b) => a - b);
    console.log(
      [
        `load: ${SUBMITS} concurrent submits, queue cap ${QUEUE_CAP}: ${accepted.length} accepted, ${refused.length} × 429 (Retry-After ${refused[0]?.retryAfter} s)`,
        `  all answered in ${(submitMs / 1000).toFixed(2)} s; 429 answer p50 ${percentile(refusedMs, 50).toFixed(0)} ms, p99 ${percentile(refusedMs, 99).toFixed(0)} ms`,
        `  every accepted generation succeeded ${(allMs / 1000).toFixed(1)} s after the burst`,
        `  status polls: ${sorted.length}, p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${(sorted.at(-1) ?? 0).toFixed(1)} ms`,
      ].join("\n"),
    );
  }, 400_000);
});
