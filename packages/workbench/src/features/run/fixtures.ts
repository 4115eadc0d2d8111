// One generation's events as the server sends them (typed by @kontext/client, and checked
// against the committed openapi.json's event schemas by fixtures.test.ts, so a renamed or
// retyped field fails a unit test, not only the browser test).
import type { KontextEvent } from "@kontext/client";

type Of<E extends KontextEvent["event"]> = Extract<KontextEvent, { event: E }>;

export const queuedEvent = (
  position: number | null,
  id = "g1",
  retry = false,
): Of<"media_generation_queued"> => ({
  id: 1,
  event: "media_generation_queued",
  data: {
    generation_id: id,
    status: "queued",
    model: "flux-kontext-dev",
    queue_position: position,
    ...(retry ? { retry: true } : {}),
  },
});

export const startedEvent = (id = "g1"): Of<"media_generation_started"> => ({
  id: 2,
  event: "media_generation_started",
  data: { generation_id: id, status: "processing", width: 1184, height: 880, seed: 42, total_steps: 4 },
});

export const progressEvent = (
  step: number,
  preview?: string,
  id = "g1",
): Of<"media_generation_progress"> => ({
  id: 2 + step,
  event: "media_generation_progress",
  data: { generation_id: id, step, total_steps: 4, progress: step / 4, ...(preview ? { preview } : {}) },
});

export const succeededEvent = (id = "g1"): Of<"media_generation_completed"> => ({
  id: 7,
  event: "media_generation_completed",
  data: {
    generation_id: id,
    status: "succeeded",
    media_type: "image",
    model: "flux-kontext-dev",
    url: `http://h/results/${id}.webp`,
    seed: 42,
    width: 1184,
    height: 880,
    timings: { queue: 5, inference: 1500, encode: 20 },
    prompt_tokens: { t5: 731, t5_max: 512, clip: 77, clip_max: 77, truncated: true },
  },
});

export const failedEvent = (
  status: "failed" | "cancelled",
  error: string,
  id = "g1",
): Of<"media_generation_completed"> => ({
  id: 7,
  event: "media_generation_completed",
  data: {
    generation_id: id,
    status,
    media_type: "image",
    model: "flux-kontext-dev",
    error,
    error_code: status,
  },
});

export const ALL_EVENTS: KontextEvent[] = [
  queuedEvent(2),
  queuedEvent(0, "g1", true),
  startedEvent(),
  progressEvent(1, "data:image/jpeg;base64,AA"),
  succeededEvent(),
  failedEvent("failed", "engine crashed"),
];

/** The schema (components.schemas) that each event's data follows in openapi.json. */
export const SCHEMA_OF: Record<KontextEvent["event"], string> = {
  media_generation_queued: "QueuedEvent",
  media_generation_started: "StartedEvent",
  media_generation_progress: "ProgressEvent",
  media_generation_completed: "CompletedEvent",
};
