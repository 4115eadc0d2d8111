// The life of one generation, as pure decisions: given the generation as stored and what just
// happened (an engine event, a cancel, an engine's death, a shutdown), what is written next.
// Both queue backends run generations through the one runner (runner.ts), which asks these
// functions and carries out their answer; the backends only store, claim and publish.
// test/lifecycle.test.ts covers every transition.
import { randomInt, randomUUID } from "node:crypto";
import { ApiError, type GenerationErrorCode, generationError } from "../errors.js";
import { IMAGE_FIELDS, isEdit, MAX_SEED, type RequestParams } from "../schema/flux-kontext-dev.js";
import type { StoredInput } from "../storage/files.js";
import { lastStepDone } from "./job-queue.js";
import {
  type ExtraInputs,
  FINAL,
  type Generation,
  NO_EXTRA_INPUTS,
  type Patch,
  type StoredParams,
} from "./types.js";

export type { Patch };
export type FinalStatus = "succeeded" | "failed" | "cancelled";

/** What the runner's situation adds to a decision. */
export interface Policy {
  /** Runs a generation gets when its engine (or worker) dies under it: the first plus retries. */
  maxAttempts: number;
  /** This process is shutting down: what stops now runs again after the restart, not counted. */
  stopping: boolean;
}

export type Decision =
  /** Go on to the next stage (run it on an engine; store its result). */
  | { kind: "continue" }
  /** The generation ends with `status`; `fields` are written with the final event. */
  | { kind: "finish"; status: FinalStatus; fields: Patch }
  /**
   * Back to the queue. `retry`: a counted retry after an engine or worker died (announced with a
   * queued event); otherwise a shutdown took it back, and the run is not counted.
   */
  | { kind: "requeue"; retry: boolean; fields: Patch };

/**
 * The generations one submission writes: what a request leaves to the server filled in (a random
 * seed; generation i gets seed + i), and the request's parameters kept as they came, all but what
 * only the request itself needs (so a field added to the schema reaches the engine as it is).
 */
export function newGenerations(
  params: RequestParams,
  input: StoredInput | null,
  count: number,
  extra: ExtraInputs = NO_EXTRA_INPUTS,
) {
  const { stream, num_generations, seed, webhook, webhook_events_filter, ...kept } = params;
  const stored: StoredParams = kept;
  if (isEdit(params)) {
    delete stored.input_image;
    if (/^https?:\/\//i.test(params.input_image)) stored.input_image = params.input_image; // a URL is worth keeping
    for (const f of IMAGE_FIELDS) if (!/^https?:\/\//i.test(stored[f] ?? "")) delete stored[f]; // the images are stored by hash
  }
  if (webhook) Object.assign(stored, { webhook, webhook_events_filter });
  const base = seed ?? randomInt(0, 2 ** 47); // randomInt's range is below 2^48
  return Array.from({ length: count }, (_, i) => ({
    id: randomUUID(),
    model: params.model,
    params: stored,
    input: input && { hash: input.hash, path: input.path, width: input.width, height: input.height },
    references: extra.references.map(({ hash, width, height }) => ({ hash, width, height })),
    mask: extra.mask && { hash: extra.mask.hash, width: extra.mask.width, height: extra.mask.height },
    seed: (base + i) % (MAX_SEED + 1),
  }));
}

const CONTINUE: Decision = { kind: "continue" };

/** A generation's error_code and error_message as fields. */
export function failure(e: { code: GenerationErrorCode; message: string }): Patch {
  return { errorCode: e.code, errorMessage: e.message };
}

const cancelled = (): Decision => ({
  kind: "finish",
  status: "cancelled",
  fields: failure(generationError("cancelled")),
});
const failed = (code: GenerationErrorCode, params: Record<string, string | number> = {}): Decision => ({
  kind: "finish",
  status: "failed",
  fields: failure(generationError(code, params)),
});

/** The fields that claim a queued generation for a run (one more attempt). */
export function claimFields(g: Generation, now: number): Patch {
  return { status: "processing", attempts: g.attempts + 1, startedAt: now, step: 0 };
}

/** Before its input is handed to an engine: a cancel that came meanwhile, or a shutdown. */
export function beforeRun(g: Generation, policy: Policy): Decision {
  if (g.cancelRequested) return cancelled();
  if (policy.stopping) return requeue(g, false);
  return CONTINUE;
}

/** The stored input could not be handed to an engine (gone, or no longer decodable). */
export function inputUnavailable(
  code: "input_missing" | "input_image_undecodable",
  message: string,
): Decision {
  return { kind: "finish", status: "failed", fields: failure({ code, message }) };
}

/** The engine's `started`: the output size, and the steps the run takes. */
export function startedFields(g: Generation, width: number, height: number): Patch {
  return { width, height, totalSteps: g.params.num_inference_steps };
}

/** The engine's `progress` after `step` of `total`. */
export function progressFields(step: number, total: number): Patch {
  return { step, totalSteps: total };
}

/**
 * The engine's `result`: a cancel answered 200 before the last step ended is honoured (the image
 * dropped); otherwise the image is stored next.
 */
export function onResult(g: Generation, hasImage: boolean): Decision {
  if (g.cancelRequested) return cancelled();
  if (!hasImage) return failed("encode_failed", { reason: "the engine returned no image" });
  return CONTINUE;
}

/** The result was encoded and stored. */
export function onStored(r: {
  resultFile: string;
  width: number;
  height: number;
  timings: Generation["timings"];
  resultHash: string;
  /** output_resolution input with preserve_unedited: the change mask's file and what it says */
  change?: { maskFile: string; changedFraction: number; wholeFrame: boolean };
  /** the engine's report of the LoRAs it applied (absent: none) */
  loras?: Generation["loraReport"];
}): Decision {
  return {
    kind: "finish",
    status: "succeeded",
    fields: {
      resultFile: r.resultFile,
      width: r.width,
      height: r.height,
      timings: r.timings,
      resultHash: r.resultHash, // links edit chains
      ...r.change,
      ...(r.loras?.length ? { loraReport: r.loras } : {}),
    },
  };
}

/** Encoding or storing the result failed: the disk cap (storage_full) or the encoder. */
export function onStoreFailed(err: unknown): Decision {
  if (err instanceof ApiError && err.code === "storage_full")
    return failed("storage_full", { reason: err.message });
  return failed("encode_failed", { reason: String(err) });
}

/**
 * The engine's `error`, or its death (engine_crashed). A cancel ends cancelled (a crash after a
 * cancel too); a shutdown takes it back to the queue uncounted; a crash is retried while
 * attempts remain; anything else fails with the engine's code.
 */
export function onEngineError(
  g: Generation,
  code: GenerationErrorCode,
  message: string,
  policy: Policy,
): Decision {
  if (code === "cancelled" || (g.cancelRequested && code === "engine_crashed")) return cancelled();
  if (code === "shutting_down" || (policy.stopping && code === "engine_crashed")) return requeue(g, false);
  if (code === "engine_crashed" && g.attempts < policy.maxAttempts) return requeue(g, true);
  return failed(code, { reason: message, retries: g.attempts - 1 });
}

/**
 * A generation found processing when it is claimed again: the worker that ran it died (its lock
 * lapsed). It runs again while attempts remain, else it fails worker_lost.
 */
export function onWorkerLost(g: Generation, policy: Policy): Decision {
  if (g.attempts >= policy.maxAttempts) return failed("worker_lost", { attempts: g.attempts });
  return requeue(g, true);
}

function requeue(g: Generation, retry: boolean): Decision {
  const fields: Patch = { status: "queued", startedAt: null, step: 0 };
  if (!retry) fields.attempts = Math.max(0, g.attempts - 1); // a shutdown's run is not counted
  return { kind: "requeue", retry, fields };
}

/**
 * A client's cancel (DELETE /api/ai/queue/:id): refused for an unknown, finished or finishing
 * generation; a queued one ends at once (`now`); a processing one is asked to stop (`signal`:
 * cancel_requested is written, and its engine told).
 */
export function onCancel(g: Generation | null, id: string): Decision | { kind: "signal" } {
  if (!g) throw new ApiError("generation_not_found", { id });
  if (FINAL.includes(g.status)) throw new ApiError("generation_finished", { id, status: g.status });
  if (lastStepDone(g)) throw new ApiError("generation_finishing", { id, steps: g.totalSteps ?? 0 });
  return g.status === "queued" ? cancelled() : { kind: "signal" };
}

/** The fields a final status writes, beside the decision's own. */
export function finalFields(status: FinalStatus, fields: Patch, now: number): Patch {
  return { ...fields, status, completedAt: now, cancelRequested: false };
}

/** The generation as it is once `finish` is written: what the final event and waiters see. */
export function finished(g: Generation, status: FinalStatus, fields: Patch, now: number): Generation {
  return { ...g, ...finalFields(status, fields, now) } as Generation;
}

/**
 * Whether `count` more generations fit the queue: 503 shutting_down while stopping, 429
 * queue_full with a Retry-After of about two seconds per queued generation per engine.
 */
export function checkAdmission(a: {
  stopping: boolean;
  queued: number;
  count: number;
  maxQueue: number;
  engines: number;
}): void {
  if (a.stopping) throw new ApiError("shutting_down");
  if (a.queued + a.count > a.maxQueue) {
    const retryAfter = Math.min(3600, Math.max(1, Math.ceil((a.queued / Math.max(1, a.engines)) * 2)));
    throw new ApiError(
      "queue_full",
      { queued: a.queued, limit: a.maxQueue, retryAfter },
      { headers: { "retry-after": String(retryAfter) } },
    );
  }
}
