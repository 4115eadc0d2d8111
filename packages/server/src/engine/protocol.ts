// Engine protocol v1 (docs/protocol.md): the messages, as a tagged union, and their line codec.
// The one definition is docs/protocol/protocol.schema.json: the parser validates every engine
// message against it, and test/protocol-schema.test.ts checks these types against it field by field.

import { ENGINE_ERRORS, type GenerationErrorCode } from "../errors.js";
import { messageProblem } from "./protocol-schema.js";

export const PROTOCOL_VERSION = 1;

export type AspectRatio = string;

// Gateway → engine
export interface JobMessage {
  v: 1;
  type: "job";
  job_id: string;
  /** the input image; left out for text-to-image (the output's size then comes from aspect_ratio) */
  input?: { path: string; width: number; height: number };
  /** input_image_2..4 in request order, raw RGB like input */
  references?: { path: string; width: number; height: number }[];
  /** mask_image: raw 8-bit grey at input's size, 255 = change, 0 = keep */
  mask?: { path: string; width: number; height: number };
  prompt: string;
  aspect_ratio: AspectRatio;
  num_inference_steps: number;
  guidance: number;
  seeds: number[];
  disable_safety_checker: boolean;
  output_dir: string;
  preview?: boolean;
  fast?: boolean;
  negative_prompt?: string;
  true_cfg_scale?: number;
  strength?: number;
  reference_method?: "offset" | "index";
  loras?: { name: string; scale?: number }[];
  /** input: each output put back at the input's size after the edit (docs/preserve.md) */
  output_resolution?: "bucket" | "input";
  /** with output_resolution input only; left out: true there */
  preserve_unedited?: boolean;
}
export interface CancelMessage {
  v: 1;
  type: "cancel";
  job_id: string;
}
export interface HealthRequest {
  v: 1;
  type: "health";
  request_id?: string;
}
export interface ShutdownMessage {
  v: 1;
  type: "shutdown";
}
export type ToEngine = JobMessage | CancelMessage | HealthRequest | ShutdownMessage;

// Engine → gateway
export interface ModelInfo {
  name: string;
  variant: "dev" | "tiny" | "custom";
  transformer_source: "diffusers" | "single_file";
  demo: boolean;
}
/** What an engine runs on (optional in `ready`); null where the engine could not tell. */
export interface EngineEnvironment {
  torch: string;
  /** torch's CUDA build, e.g. "13.2"; null for a CPU-only torch */
  cuda: string | null;
  cudnn: string | null;
  /** the NVIDIA driver release, e.g. "580.65.06" */
  driver: string | null;
  gpu: string | null;
  /** compute capability, e.g. "9.0" */
  capability: string | null;
  /** the attention kernel PyTorch picks: flash, efficient, cudnn or math */
  attention: string | null;
  visible_devices: string | null;
}
export interface ReadyMessage {
  v: 1;
  type: "ready";
  protocol: number;
  model: ModelInfo;
  device: string;
  dtype: string;
  safety_checker: boolean;
  precision: "fp32" | "bf16" | "fp8" | "fp8-weights";
  compiled: boolean;
  pid: number;
  environment?: EngineEnvironment;
}
export interface FatalMessage {
  v: 1;
  type: "fatal";
  code: string;
  message: string;
}
export interface StartedMessage {
  v: 1;
  type: "started";
  job_id: string;
  width: number;
  height: number;
  seeds: number[];
}
export interface Preview {
  mime: string;
  width: number;
  height: number;
  data: string;
}
export interface ProgressMessage {
  v: 1;
  type: "progress";
  job_id: string;
  step: number;
  total_steps: number;
  preview?: Preview;
}
export interface ResultImage {
  path: string;
  width: number;
  height: number;
  seed: number;
  /** output_resolution input with preserve_unedited: the change mask, raw 8-bit greyscale at width × height */
  mask_path?: string;
  /** the fraction of the frame the edit changed (before feathering) */
  changed_fraction?: number;
  /** the edit covered most of the frame: the image is the plain upscaled output */
  whole_frame?: boolean;
}
/** How much of the prompt each text encoder read: T5 keeps 512 tokens, CLIP 77. */
export interface PromptTokens {
  t5: number;
  t5_max: number;
  clip: number;
  clip_max: number;
  /** T5 (what the transformer reads) dropped the tokens past t5_max */
  truncated: boolean;
}
/** One LoRA adapter a job ran with: its scale, its file's sha256 and the doctor's report of the file. */
export interface AppliedLora {
  name: string;
  scale: number;
  sha256: string;
  size_bytes: number;
  format: "diffusers" | "kohya" | "bfl" | "fal_kontext";
  /** the file's transformer modules that found a layer of the model, of `total` */
  matched: number;
  total: number;
  unmatched_prefixes: string[];
  /** CLIP/T5 modules: counted, not applied */
  text_encoder_modules: number;
}
export interface ResultMessage {
  v: 1;
  type: "result";
  job_id: string;
  images: ResultImage[];
  timings_ms: Record<string, number>;
  cache: {
    prompt: boolean;
    condition: boolean;
    negative_prompt?: boolean;
    /** each reference image's VAE encode skipped (only with that reference) */
    input_image_2?: boolean;
    input_image_3?: boolean;
    input_image_4?: boolean;
  };
  prompt_tokens?: PromptTokens;
  /** only when the job named LoRAs, in its order */
  loras?: AppliedLora[];
}
export interface ErrorMessage {
  v: 1;
  type: "error";
  job_id: string | null;
  code: string;
  message: string;
  field?: string;
}
/**
 * What a client is told of an engine's error: the generation error_code the catalogue's
 * ENGINE_ERRORS gives the engine's code (`internal` for one it does not list) and a message
 * without server paths or process ids (the server's log keeps the engine's own words). The
 * engine refusing a job the gateway built is not the client's fault, so `invalid_request` and
 * the other protocol codes become `internal`; an unreadable input is `input_missing`.
 */
export function errorForClients(m: Pick<ErrorMessage, "code" | "message" | "field">): {
  code: GenerationErrorCode;
  message: string;
} {
  let code: GenerationErrorCode = Object.hasOwn(ENGINE_ERRORS, m.code)
    ? ENGINE_ERRORS[m.code as keyof typeof ENGINE_ERRORS]
    : "internal";
  if (m.code === "invalid_request" && m.field === "input.path") code = "input_missing";
  return { code, message: withoutServerDetail(m.message) };
}

/** Drops directories from absolute paths (keeping the file name) and `pid N` mentions. */
export function withoutServerDetail(text: string): string {
  return text
    .replace(/(?<![\w.:/\\])(?:[A-Za-z]:)?(?:[\\/][^\s\\/:'"()]+)+[\\/]([^\s\\/:'"()]+)/g, "$1")
    .replace(/\s*\(pid \d+\)|\bpid \d+\s*/g, "")
    .slice(0, 1000);
}

export interface HealthMessage {
  v: 1;
  type: "health";
  request_id: string | null;
  state: "idle" | "busy";
  job_id: string | null;
  queued: number;
  device: string;
  uptime_s: number;
}
export type FromEngine =
  | ReadyMessage
  | FatalMessage
  | StartedMessage
  | ProgressMessage
  | ResultMessage
  | ErrorMessage
  | HealthMessage;

/** A line from the engine the gateway cannot take; `jobId` and `type` when the line still says them. */
export class ProtocolError extends Error {
  constructor(
    message: string,
    readonly jobId: string | null = null,
    readonly type: string | null = null,
  ) {
    super(message);
  }
}

/** Parses one line from the engine; throws ProtocolError naming what is wrong. */
export function parseEngineLine(line: string): FromEngine {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    throw new ProtocolError(`not JSON: ${line.slice(0, 200)}`);
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw new ProtocolError("not a JSON object");
  const m = o as Record<string, unknown>;
  if (m.v !== PROTOCOL_VERSION)
    throw new ProtocolError(`unsupported protocol version ${JSON.stringify(m.v)}`);
  // the whole message, nested fields included, against docs/protocol/protocol.schema.json
  const problem = messageProblem("from_engine", m);
  if (problem)
    throw new ProtocolError(
      problem,
      typeof m.job_id === "string" ? m.job_id : null,
      typeof m.type === "string" ? m.type : null,
    );
  return m as unknown as FromEngine;
}

/** One line for the engine's stdin. */
export function encodeToEngine(msg: ToEngine): string {
  return `${JSON.stringify(msg)}\n`;
}
