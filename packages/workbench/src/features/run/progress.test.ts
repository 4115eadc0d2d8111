import { readFileSync } from "node:fs";
import path from "node:path";
import { type Schema, Validator } from "@cfworker/json-schema";
import type { Generation } from "@kontext/client";
import { describe, expect, it } from "vitest";
import {
  ALL_EVENTS,
  failedEvent,
  progressEvent,
  queuedEvent,
  SCHEMA_OF,
  startedEvent,
  succeededEvent,
} from "./fixtures.js";
import {
  anyActive,
  applyEvent,
  elapsedMs,
  formatSeconds,
  fraction,
  fromGeneration,
  type GenerationProgress,
  queued,
  type ServerEvent,
  statusText,
  truncationNote,
} from "./progress.js";

const fold = (events: ServerEvent[], start = queued("g1", 1000, 4)): GenerationProgress =>
  events.reduce((p, e, i) => applyEvent(p, e, 2000 + i * 500), start);

describe("the event fixtures", () => {
  const openapi = JSON.parse(
    readFileSync(path.resolve(import.meta.dirname, "../../../../server/openapi.json"), "utf8"),
  ) as { components: { schemas: Record<string, unknown> } };
  for (const e of ALL_EVENTS)
    it(`${e.event} (${JSON.stringify(e.data).slice(0, 50)}…) follows the server's ${SCHEMA_OF[e.event]}`, () => {
      const schema = {
        ...(openapi.components.schemas[SCHEMA_OF[e.event]] as object),
        $defs: openapi.components.schemas,
      };
      const result = new Validator(schema as Schema, "2020-12", false).validate(e.data);
      expect(result.errors).toEqual([]);
    });
});

describe("generation progress", () => {
  it("goes from queue position to step i/N with previews, then to the result", () => {
    let p = fold([queuedEvent(2)]);
    expect(statusText(p)).toBe("Queued: 2 ahead");
    p = applyEvent(p, queuedEvent(0), 2100);
    expect(statusText(p)).toBe("Queued: runs next");
    p = applyEvent(p, startedEvent(), 2200);
    expect([p.phase, statusText(p), p.seed, p.width]).toEqual(["processing", "Starting", 42, 1184]);
    p = applyEvent(p, progressEvent(1, "data:image/jpeg;base64,AA"), 2300);
    expect(statusText(p)).toBe("Step 1 of 4");
    expect(fraction(p)).toBe(0.25);
    p = applyEvent(p, progressEvent(2), 2400); // a step without a preview keeps the last one
    expect(p.preview).toBe("data:image/jpeg;base64,AA");
    p = applyEvent(p, succeededEvent(), 3000);
    expect(p).toMatchObject({ phase: "succeeded", resultUrl: "http://h/results/g1.webp", step: 4 });
    expect(p.timings).toEqual({ queue: 5, inference: 1500, encode: 20 });
    expect(truncationNote(p)).toBe("prompt truncated: 512 of 731 tokens used");
    expect([fraction(p), statusText(p), elapsedMs(p, 99_999)]).toEqual([1, "Done", 2000]);
  });

  it("counts queue positions down only: a late or replayed position never moves one back", () => {
    let p = fold([queuedEvent(2), queuedEvent(1)]);
    p = applyEvent(p, queuedEvent(2), 3000); // a stream opened late replays the old position
    expect(p.queuePosition).toBe(1);
    p = applyEvent(p, queuedEvent(null), 3100);
    expect(p.queuePosition).toBe(1);
    p = applyEvent(p, queuedEvent(0), 3200);
    expect(p.queuePosition).toBe(0);
  });

  it("ignores a stale queued event once started, but starts over when retried after an engine died", () => {
    let p = fold([queuedEvent(0), startedEvent(), progressEvent(2, "data:x")]);
    expect(applyEvent(p, queuedEvent(3), 4000)).toBe(p);
    p = applyEvent(p, queuedEvent(3, "g1", true), 4000);
    expect([p.phase, p.queuePosition, p.step, p.preview]).toEqual(["queued", 3, 0, null]);
  });

  it("never reopens a finished generation", () => {
    const p = fold([startedEvent(), succeededEvent()]);
    expect(applyEvent(p, progressEvent(1), 9000)).toBe(p);
    expect(applyEvent(p, queuedEvent(0), 9000)).toBe(p);
  });

  it("says why a generation failed or was cancelled", () => {
    expect(statusText(fold([failedEvent("failed", "engine crashed")]))).toBe("Failed: engine crashed");
    expect(statusText(fold([failedEvent("cancelled", "cancelled")]))).toBe("Cancelled");
  });

  it("picks a generation up where the server has it (after a reload)", () => {
    const g = {
      generation_id: "g1",
      model_name: "flux-kontext-dev",
      prompt: "p",
      media_type: "image",
      status: "processing",
      result_url: null,
      error_message: null,
      enqueued_at: "2026-01-01T00:00:00.000Z",
      started_at: "2026-01-01T00:00:01.000Z",
      completed_at: null,
      queue_position: null,
      progress: 0.5,
      step: 25,
      total_steps: 50,
      preview_url: null,
      seed: 7,
      width: 1024,
      height: 1024,
    } as Generation;
    const p = fromGeneration(g, Date.parse("2026-01-01T00:00:05.000Z"));
    expect([p.phase, statusText(p), elapsedMs(p, Date.parse("2026-01-01T00:00:05.000Z"))]).toEqual([
      "processing",
      "Step 25 of 50",
      5000,
    ]);
    expect(statusText(fromGeneration({ ...g, status: "queued", queue_position: 3 }, 0))).toBe(
      "Queued: 3 ahead",
    );
    expect(fromGeneration({ ...g, status: "succeeded", result_url: "/r.webp" }, 0)).toMatchObject({
      phase: "succeeded",
      resultUrl: "/r.webp",
    });
  });

  it("formats seconds and knows which generations are active", () => {
    expect(formatSeconds(1234)).toBe("1.2 s");
    expect(formatSeconds(75_000)).toBe("1 min 15 s");
    const done = fold([succeededEvent()]);
    expect(anyActive({ a: queued("a", 0), b: done }, ["b"])).toBe(false);
    expect(anyActive({ a: queued("a", 0), b: done }, ["a", "b", undefined])).toBe(true);
  });
});
