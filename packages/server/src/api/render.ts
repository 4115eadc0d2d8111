// How generations and their events look on the wire (hosted field names plus Kontext's).
import type { AppContext } from "../context.js";
import type { AppliedLora } from "../engine/protocol.js";
import type { QueuedGeneration } from "../jobs/job-queue.js";
import { changeData, warningsOf } from "../jobs/run.js";
import type { Generation, PromptTokens, StoredEvent } from "../jobs/types.js";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function renderGeneration(
  g: QueuedGeneration,
  ctx: AppContext,
  base: string,
): Record<string, unknown> {
  const resultPath = ctx.queue.resultUrlPath(g);
  const total = g.totalSteps ?? g.params.num_inference_steps;
  const progress = g.status === "succeeded" ? 1 : total > 0 ? g.step / total : 0;
  return {
    generation_id: g.id,
    model_name: g.model,
    media_type: "image",
    status: g.status,
    result_url: resultPath ? `${base}${resultPath}` : null,
    error_message: g.errorMessage,
    enqueued_at: iso(g.enqueuedAt),
    started_at: iso(g.startedAt),
    completed_at: iso(g.completedAt),
    ...g.params,
    prompt: g.params.prompt,
    model: g.model,
    seed: g.seed,
    // Kontext additions
    error_code: g.errorCode,
    queue_position: g.queuePosition,
    progress,
    step: g.step,
    total_steps: total,
    preview_url: g.status === "processing" ? `${base}/api/ai/queue/${g.id}/preview` : null,
    width: g.width,
    height: g.height,
    timings: g.timings
      ? { queue: g.timings.queue, inference: g.timings.inference, encode: g.timings.encode }
      : null,
    ...promptTokensOf(g),
    ...loraReportOf(g),
    ...changeOf(g, base),
    ...warningsOf(g),
    attempts: g.attempts,
  };
}

/**
 * `{change_mask_url, changed_fraction, whole_frame}` of an output_resolution input edit with
 * preserve_unedited (the URL absolute; null once the files are deleted), else nothing.
 */
export function changeOf(g: Generation, base: string): Record<string, unknown> {
  const data = changeData(g);
  if (typeof data.change_mask_url === "string") data.change_mask_url = `${base}${data.change_mask_url}`;
  return data;
}

/** `{prompt_tokens}` when the engine reported them (engines before it did not): for spreading into a response. */
export function promptTokensOf(g: Pick<Generation, "timings">): { prompt_tokens?: PromptTokens } {
  return g.timings?.prompt_tokens ? { prompt_tokens: g.timings.prompt_tokens } : {};
}

/** `{lora_report}` when it ran with LoRAs: each adapter with the engine's doctor report. */
export function loraReportOf(g: Pick<Generation, "loraReport">): { lora_report?: AppliedLora[] } {
  return g.loraReport ? { lora_report: g.loraReport } : {};
}

/** An event's data as sent: result URLs made absolute, and the image inlined on request. */
export async function renderEvent(
  e: StoredEvent,
  base: string,
  ctx: AppContext,
  inline: boolean,
): Promise<Record<string, unknown>> {
  const data = { ...e.data };
  if (typeof data.url === "string" && data.url.startsWith("/")) {
    const path = data.url;
    data.url = `${base}${path}`;
    if (typeof data.change_mask_url === "string") data.change_mask_url = `${base}${data.change_mask_url}`;
    if (inline) {
      const bytes = await ctx.files.readResult(path.slice("/results/".length));
      if (bytes) data.b64_json = bytes.toString("base64");
    }
  }
  return data;
}
