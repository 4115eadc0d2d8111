// A history item as GET /api/history lists one.
import type { HistoryItem } from "../../src/lib/history.js";

export function item(
  id: string,
  parent: string | null,
  prompt = id,
  extra: Partial<HistoryItem> = {},
): HistoryItem {
  return {
    generation_id: id,
    status: "succeeded",
    prompt,
    seed: 1,
    result_url: `/results/${id}.webp`,
    input_url: `/api/history/${id}/input`,
    input_width: 64,
    input_height: 48,
    parent_generation_id: parent,
    error_message: null,
    enqueued_at: "2026-01-01T00:00:00.000Z",
    completed_at: null,
    width: 1184,
    height: 880,
    timings: null,
    num_inference_steps: 4,
    guidance: 2.5,
    ...extra,
  };
}
