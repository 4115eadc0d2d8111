import { describe, expect, it } from "vitest";
import {
  anyActive,
  applyEvent,
  elapsedMs,
  formatSeconds,
  fraction,
  type GenerationProgress,
  queued,
  type ServerEvent,
  statusText,
  trackReducer,
  truncationNote,
} from "../../src/lib/progress.js";

const ev = (event: string, data: Record<string, unknown>): ServerEvent => ({ event, data });
const fold = (events: ServerEvent[], start = queued("g1", 1000, 4)): GenerationProgress =>
  events.reduce((p, e, i) => applyEvent(p, e, 2000 + i * 500), start);

const QUEUED = ev("media_generation_queued", { generation_id: "g1", status: "queued", queue_position: 2 });
const STARTED = ev("media_generation_started", { seed: 42, width: 1184, height: 880, total_steps: 4 });
const step = (i: number, preview?: string) =>
  ev("media_generation_progress", {
    step: i,
    total_steps: 4,
    progress: i / 4,
    ...(preview ? { preview } : {}),
  });
const DONE = ev("media_generation_completed", {
  status: "succeeded",
  url: "http://h/results/g1.webp",
  seed: 42,
  width: 1184,
  height: 880,
  timings: { queue: 5, inference: 1500, encode: 20 },
});

describe("generation progress", () => {
  it("goes from queue position to step i/N with previews, then to the result", () => {
    let p = fold([QUEUED]);
    expect(statusText(p)).toBe("Queued: 2 ahead");
    p = applyEvent(p, ev("media_generation_queued", { queue_position: 0 }), 2100);
    expect(statusText(p)).toBe("Queued: runs next");
    p = applyEvent(p, STARTED, 2200);
    expect([p.phase, statusText(p), p.seed, p.width]).toEqual(["processing", "Starting", 42, 1184]);
    p = applyEvent(p, step(1, "data:image/jpeg;base64,AA"), 2300);
    expect(statusText(p)).toBe("Step 1 of 4");
    expect(fraction(p)).toBe(0.25);
    expect(p.preview).toBe("data:image/jpeg;base64,AA");
    p = applyEvent(p, step(2), 2400); // a step without a preview keeps the last one
    expect(p.preview).toBe("data:image/jpeg;base64,AA");
    p = applyEvent(p, DONE, 3000);
    expect(p).toMatchObject({
      phase: "succeeded",
      resultUrl: "http://h/results/g1.webp",
      step: 4,
      timings: { queue: 5, inference: 1500, encode: 20 },
    });
    expect(fraction(p)).toBe(1);
    expect(statusText(p)).toBe("Done");
    expect(elapsedMs(p, 99_999)).toBe(2000); // frozen at completion
  });

  it("says when the prompt was cut, and by how much", () => {
    const tokens = { t5: 731, t5_max: 512, clip: 618, clip_max: 77, truncated: true };
    const cut = fold([STARTED, ev("media_generation_completed", { ...DONE.data, prompt_tokens: tokens })]);
    expect(cut.promptTokens).toEqual({ total: 731, used: 512, truncated: true });
    expect(truncationNote(cut)).toBe("prompt truncated: 512 of 731 tokens used");
    const whole = { ...tokens, t5: 9, clip: 8, truncated: false };
    expect(
      truncationNote(fold([ev("media_generation_completed", { ...DONE.data, prompt_tokens: whole })])),
    ).toBe(null);
    expect(truncationNote(fold([STARTED, DONE]))).toBe(null); // an engine that does not report them
  });

  it("never goes back: a replayed older step or any event after the end changes nothing", () => {
    const p = fold([STARTED, step(3), step(2)]);
    expect(p.step).toBe(3);
    const done = fold([STARTED, DONE]);
    expect(applyEvent(done, step(1), 9000)).toBe(done);
  });

  it("says why a generation failed or that it was cancelled", () => {
    const failed = fold([
      STARTED,
      ev("media_generation_completed", { status: "failed", error: "engine crashed" }),
    ]);
    expect(statusText(failed)).toBe("Failed: engine crashed");
    const cancelled = fold([
      ev("media_generation_completed", { status: "cancelled", error: "cancelled by the client" }),
    ]);
    expect(statusText(cancelled)).toBe("Cancelled");
  });

  it("goes back to queued when a generation is retried after its engine died", () => {
    const p = fold([STARTED, step(2), ev("media_generation_queued", { queue_position: 0, retry: true })]);
    expect([p.phase, p.step, p.preview]).toEqual(["queued", 0, null]);
  });

  it("formats elapsed time", () => {
    expect(formatSeconds(1234)).toBe("1.2 s");
    expect(formatSeconds(125_000)).toBe("2 min 5 s");
  });
});

describe("tracked generations", () => {
  it("follows several generations and knows when all are done", () => {
    let s = trackReducer({}, { type: "submitted", ids: ["a", "b"], now: 0, totalSteps: 4 });
    expect(anyActive(s, ["a", "b"])).toBe(true);
    s = trackReducer(s, { type: "event", id: "a", event: DONE, now: 10 });
    expect(anyActive(s, ["a"])).toBe(false);
    expect(anyActive(s, ["a", "b"])).toBe(true);
    const same = trackReducer(s, { type: "event", id: "unknown", event: DONE, now: 10 });
    expect(same).toBe(s);
    // submitting again does not reset a generation already followed
    const again = trackReducer(s, { type: "submitted", ids: ["a"], now: 50, totalSteps: 4 });
    expect(again.a?.phase).toBe("succeeded");
  });
});
