// A generation (one output image) as the job store keeps it.
import type { AppliedLora } from "../engine/protocol.js";
import type { EDIT_ONLY_FIELDS, EditParams } from "../schema/flux-kontext-dev.js";

export const STATUSES = ["queued", "processing", "succeeded", "failed", "cancelled"] as const;
export type Status = (typeof STATUSES)[number];
export const FINAL: readonly Status[] = ["succeeded", "failed", "cancelled"];

/** The edit-only fields a text-to-image generation has none of (input_image is kept apart). */
type EditOnly = Exclude<(typeof EDIT_ONLY_FIELDS)[number], "input_image">;

/**
 * The request parameters kept with a generation (input_image and the other images only when they were URLs). A
 * text-to-image generation (POST /api/ai/images/generate) has no edit-only fields.
 */
export type StoredParams = Omit<
  EditParams,
  "input_image" | "stream" | "num_generations" | "seed" | "webhook" | "webhook_events_filter" | EditOnly
> &
  Partial<Pick<EditParams, EditOnly>> & {
    input_image?: string;
    webhook?: string;
    webhook_events_filter?: EditParams["webhook_events_filter"];
  };

export interface Generation {
  id: string;
  seq: number;
  model: string;
  status: Status;
  params: StoredParams;
  /** The stored input image; null for text-to-image (POST /api/ai/images/generate). */
  input: GenerationInput | null;
  /** input_image_2..4 as stored, in that order (none: empty). */
  references: InputRef[];
  /** mask_image as stored, at its own size (fitted to the input's when it runs); null without one. */
  mask: InputRef | null;
  seed: number;
  attempts: number;
  enqueuedAt: number;
  startedAt: number | null;
  completedAt: number | null;
  width: number | null;
  height: number | null;
  step: number;
  totalSteps: number | null;
  resultFile: string | null;
  errorCode: string | null;
  errorMessage: string | null;
  timings: Timings | null;
  cancelRequested: boolean;
  /** The API key (its id, never the key) that submitted it; null when keys are off. */
  owner: string | null;
  /** Scheme, host and port its URLs start with outside a request (webhooks). */
  baseUrl: string | null;
  /** When its input and result files were deleted (retention or the disk cap). */
  expiredAt: number | null;
  /** sha256 of the result file's bytes (the hash an input of the same bytes gets). */
  resultHash: string | null;
  /** The generation whose result was this one's input image: the previous step of an edit chain. */
  parentId: string | null;
  /** Starred in the workbench's history (PATCH /api/history/:id). */
  starred: boolean;
  /** output_resolution input with preserve_unedited: the change mask's result file (greyscale PNG). */
  maskFile: string | null;
  /** The fraction of the frame the edit changed, with the mask. */
  changedFraction: number | null;
  /** The edit covered most of the frame: the result is the plain upscaled output. */
  wholeFrame: boolean | null;
  /** The LoRA adapters it ran with, each with the engine's doctor report; null without LoRAs (or not yet run). */
  loraReport: AppliedLora[] | null;
}

/** A stored input image a generation refers to: its hash and its size as the engine sees it (oriented, capped). */
export interface InputRef {
  hash: string;
  width: number;
  height: number;
}

/** A generation's input image as stored (its size as the engine sees it, oriented). */
export interface GenerationInput {
  hash: string;
  path: string;
  width: number;
  height: number;
}

/** The images a generation has beside input_image. */
export type ExtraInputs = Pick<Generation, "references" | "mask">;
export const NO_EXTRA_INPUTS: ExtraInputs = { references: [], mask: null };

/** A change to a generation's stored fields. */
export type Patch = Partial<Omit<Generation, "id" | "seq">>;

export interface Timings {
  /** ms from enqueue to the engine's start */
  queue: number;
  /** the engine's own total */
  inference: number;
  /** ms to encode and store the output */
  encode: number;
  /** the engine's breakdown (text_encode, vae_encode, denoise, vae_decode, safety, total) */
  engine?: Record<string, number>;
  /** how many prompt tokens the text encoders read, and whether T5 cut the prompt (kept here: the job stores keep timings as one JSON value) */
  prompt_tokens?: PromptTokens;
}

/** Tokens in the prompt for each text encoder and each one's limit (T5 512, CLIP 77). */
export interface PromptTokens {
  t5: number;
  t5_max: number;
  clip: number;
  clip_max: number;
  truncated: boolean;
}

export type EventName =
  | "media_generation_queued"
  | "media_generation_started"
  | "media_generation_progress"
  | "media_generation_completed";

export interface StoredEvent {
  id: number;
  generationId: string;
  event: EventName;
  data: Record<string, unknown>;
}

/** What a submission records beside its generations. */
export interface InsertMeta {
  owner?: string | null;
  baseUrl?: string | null;
  /** Recorded with the generations, so the same key finds them again. */
  idempotency?: { key: string; requestHash: string };
  /** The request's reference images and mask, stored (none when left out). */
  inputs?: ExtraInputs;
}
