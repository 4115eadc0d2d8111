// What both queue backends do the same way around one run of a generation on an engine: the data
// of each event, and turning the engine's raw RGB result into the stored output file.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { JobMessage, ProgressMessage, ResultImage, StartedMessage } from "../engine/protocol.js";
import { ENGINE_PARAMS } from "../engine/protocol-schema.js";
import { ApiError, generationError } from "../errors.js";
import { alphaOf, decodeInputInto, decodeMask, encodeMask, encodeOutput } from "../images/codec.js";
import { EditRequest } from "../schema/flux-kontext-dev.js";
import type { FileStore } from "../storage/files.js";
import { RESULT_URL_PREFIX } from "./job-queue.js";
import type { Generation, InputRef, Timings } from "./types.js";

/** A raw file an engine reads for one run (RGB, or grey for the mask), and its size. */
export interface EngineFile {
  path: string;
  width: number;
  height: number;
}

/**
 * The input image's raw RGB file; its references' (input_image_2..4) and its mask's, when it has
 * them. `release()` at the run's end lets the decoded copies go (FileStore.decoded keeps them for
 * the next run on the same images).
 */
export interface EngineInput extends EngineFile {
  references?: EngineFile[];
  /** Raw 8-bit grey at the input's size: 255 = change, 0 = keep. */
  mask?: EngineFile;
  release(): void;
}

/** Why a generation's input cannot be handed to an engine (its error_code and a message without paths). */
export class InputUnavailable extends Error {
  constructor(
    readonly code: "input_missing" | "input_image_undecodable",
    reason: string,
  ) {
    super(generationError(code, { reason }).message);
  }
}

/** Pixels a stored input may have when decoded for a run: it was checked against the limit at submission. */
const STORED_MAX_PIXELS = 16383 * 16383;

/**
 * The input of one run as the engine reads it: the stored original decoded (decodeInput: EXIF
 * orientation, at most ENGINE_MAX_SIDE, alpha on white, sRGB, first frame) into tmp/decoded/, or
 * the copy a run on the same image decoded before (FileStore.decoded: a workbench iterating on
 * one 12 MP photo decodes it once); an input an earlier version stored as raw RGB is read as is.
 * Its references are decoded the same way; its mask to grey at the input's decoded size, in the
 * job's tmp dir. Null for text-to-image: there is no input to hand over.
 */
export async function engineInput(files: FileStore, g: Generation): Promise<EngineInput | null> {
  if (!g.input) return null;
  const held: Array<() => void> = [];
  const release = () => {
    for (const r of held.splice(0)) r();
  };
  try {
    const image = await decodeStored(files, g, g.input, "input image", held);
    const input: EngineInput = { ...image, release };
    const references = g.references ?? [];
    if (references.length > 0) {
      input.references = [];
      for (const [i, ref] of references.entries())
        input.references.push(await decodeStored(files, g, ref, `input_image_${i + 2}`, held));
    }
    if (g.mask) input.mask = await decodeStored(files, g, g.mask, "mask_image", held, input);
    return input;
  } catch (err) {
    release();
    throw err;
  }
}

/**
 * One stored image of `g` decoded for the engine (`what` names it in messages): an image through
 * the decoded-input cache, its hold pushed onto `held`; with `maskAt`, a mask (decodeMask) at
 * that size into the job's tmp dir.
 */
async function decodeStored(
  files: FileStore,
  g: Generation,
  ref: InputRef,
  what: string,
  held: Array<() => void>,
  maskAt?: { width: number; height: number },
): Promise<EngineFile> {
  const unpin = await files.pinInput(ref.hash); // not removed or evicted while it is read
  try {
    const stored = await files.findInput(ref.hash);
    const missing = () =>
      new InputUnavailable("input_missing", `the ${what} (sha256 ${ref.hash}) is no longer stored`);
    if (!stored) throw missing();
    if (stored.format === "raw") {
      // only an input_image stored by an earlier version is raw RGB
      if (maskAt) throw new InputUnavailable("input_image_undecodable", `the ${what} is stored as raw RGB`);
      return { path: stored.path, width: stored.width, height: stored.height };
    }
    const bytesOf = async () => {
      const bytes = await readFile(stored.path).catch(() => null);
      if (!bytes) throw missing();
      return bytes;
    };
    try {
      if (maskAt) {
        let file = "";
        await decodeMask(await bytesOf(), STORED_MAX_PIXELS, maskAt.width, maskAt.height, async (m) => {
          file = await files.writeEngineInput(g.id, m.grey, "mask_image.grey");
        });
        return { path: file, width: maskAt.width, height: maskAt.height };
      }
      const d = await files.decoded.get(ref.hash, async (write) =>
        decodeInputInto(await bytesOf(), STORED_MAX_PIXELS, (img) => write(img.rgb)),
      );
      held.push(d.release);
      return { path: d.path, width: d.width, height: d.height };
    } catch (err) {
      if (!(err instanceof ApiError && err.code.startsWith("input_image_"))) throw err;
      const reason = String(err.params.reason ?? err.message);
      throw new InputUnavailable(
        "input_image_undecodable",
        what === "input image" ? reason : `${what}: ${reason}`,
      );
    }
  } finally {
    unpin();
  }
}

/**
 * The engine's job message for one run of `g`, reading `input` (none for text-to-image) and
 * writing into `outputDir`: the envelope, then every request parameter the protocol schema gives
 * the engine (ENGINE_PARAMS), copied as stored; one a generation stored before it existed gets the
 * request schema's default.
 */
export function jobMessage(g: Generation, input: EngineInput | null, outputDir: string): JobMessage {
  const msg: Record<string, unknown> = { v: 1, type: "job", job_id: g.id };
  if (input) msg.input = { path: input.path, width: input.width, height: input.height };
  Object.assign(msg, { seeds: [g.seed], output_dir: outputDir, preview: true });
  if (input?.references?.length)
    msg.references = input.references.map(({ path, width, height }) => ({ path, width, height }));
  if (input?.mask) msg.mask = { path: input.mask.path, width: input.mask.width, height: input.mask.height };
  const params = g.params as Record<string, unknown>;
  const defaults = EditRequest.properties as Record<string, { default?: unknown }>;
  for (const name of ENGINE_PARAMS) {
    const value = params[name] ?? defaults[name]?.default;
    if (value !== undefined) msg[name] = value;
  }
  return msg as unknown as JobMessage;
}

export function queuedData(g: Pick<Generation, "id" | "model">, position: number | null, retry = false) {
  const data: Record<string, unknown> = {
    generation_id: g.id,
    status: "queued",
    model: g.model,
    queue_position: position,
  };
  if (retry) data.retry = true;
  return data;
}

export function startedData(g: Generation, m: StartedMessage): Record<string, unknown> {
  return {
    generation_id: g.id,
    status: "processing",
    width: m.width,
    height: m.height,
    seed: g.seed,
    total_steps: g.params.num_inference_steps,
  };
}

export function progressData(id: string, m: ProgressMessage): Record<string, unknown> {
  const data: Record<string, unknown> = {
    generation_id: id,
    step: m.step,
    total_steps: m.total_steps,
    progress: m.step / m.total_steps,
  };
  if (m.preview) data.preview = `data:${m.preview.mime};base64,${m.preview.data}`;
  return data;
}

/** The final event's data; `done` is the generation as written with its final status. */
export function completedData(done: Generation, resultUrl: string | null): Record<string, unknown> {
  const data: Record<string, unknown> = {
    generation_id: done.id,
    status: done.status,
    media_type: "image",
    model: done.model,
  };
  if (done.status === "succeeded") {
    const { prompt_tokens, ...timings } = done.timings ?? {}; // stored with the timings, shown beside them
    Object.assign(data, {
      url: resultUrl,
      seed: done.seed,
      width: done.width,
      height: done.height,
      timings: done.timings ? timings : null,
    });
    if (prompt_tokens) data.prompt_tokens = prompt_tokens;
    if (done.loraReport) data.lora_report = done.loraReport;
    Object.assign(data, changeData(done), warningsOf(done));
  } else {
    data.error = done.errorMessage;
    data.error_code = done.errorCode;
  }
  return data;
}

/** The change mask's URL and what it says (output_resolution input with preserve_unedited), else nothing. */
export function changeData(g: Generation): Record<string, unknown> {
  if (g.changedFraction === null) return {};
  return {
    change_mask_url: g.maskFile && g.expiredAt === null ? `${RESULT_URL_PREFIX}${g.maskFile}` : null,
    changed_fraction: g.changedFraction,
    whole_frame: g.wholeFrame ?? false,
  };
}

/**
 * What a client should know about how its images were taken: a mask_image of another size than
 * input_image was stretched to it. Empty when there is nothing to say.
 */
export function inputWarnings(g: Pick<Generation, "input" | "mask">): string[] {
  const m = g.mask;
  const input = g.input; // a mask always comes with one
  if (!m || !input || (m.width === input.width && m.height === input.height)) return [];
  return [
    `mask_image is ${m.width}×${m.height} and input_image ${input.width}×${input.height}: the mask was resized to the input image's size`,
  ];
}

/** `{warnings}` when there are any (inputWarnings), else nothing: for spreading into a response. */
export function warningsOf(g: Pick<Generation, "input" | "mask">): { warnings?: string[] } {
  const warnings = inputWarnings(g);
  return warnings.length > 0 ? { warnings } : {};
}

/** The change mask's result file name beside a result's (same id and random part). */
export function maskName(resultFile: string): string {
  return resultFile.replace(/\.(webp|jpg|png)$/, "-mask.png");
}

/** Whether the generation asked for its result at the input's own size. */
const atInputSize = (g: Generation) => g.params.output_resolution === "input";

export interface EncodedResult {
  resultFile: string;
  width: number;
  height: number;
  timings: Timings;
  /** sha256 of the stored bytes: an input with the same bytes continues this edit chain. */
  resultHash: string;
  /** output_resolution input with preserve_unedited: the stored change mask and what it says */
  change?: { maskFile: string; changedFraction: number; wholeFrame: boolean };
}

/**
 * The alpha channel of the generation's stored input, at width × height, when the result is at
 * the input's size in a format that keeps it (png, webp); null otherwise.
 */
async function inputAlpha(
  files: FileStore,
  g: Generation,
  width: number,
  height: number,
): Promise<Buffer | null> {
  if (!atInputSize(g) || g.params.output_format === "jpg" || !g.input) return null;
  const { hash } = g.input;
  const unpin = await files.pinInput(hash);
  try {
    const stored = await files.findInput(hash);
    if (!stored || stored.format === "raw") return null; // raw RGB has no alpha
    const bytes = await readFile(stored.path).catch(() => null);
    return bytes ? await alphaOf(bytes, width, height) : null;
  } finally {
    unpin();
  }
}

/**
 * Encodes the engine's raw RGB output in the requested format and stores it as the result; with
 * output_resolution input, the input's alpha goes back on png and webp, and the engine's change
 * mask (raw greyscale) is stored beside it as a greyscale PNG.
 */
export async function storeResult(
  files: FileStore,
  g: Generation,
  image: Omit<ResultImage, "seed">,
  engineTimings: Record<string, number>,
): Promise<EncodedResult> {
  const t0 = performance.now();
  const rgb = await readFile(image.path);
  const alpha = await inputAlpha(files, g, image.width, image.height);
  const encoded = await encodeOutput(
    rgb,
    image.width,
    image.height,
    g.params.output_format,
    g.params.output_quality,
    alpha,
  );
  const name = files.resultName(g.id, g.params.output_format);
  let change: EncodedResult["change"];
  if (image.mask_path !== undefined && image.changed_fraction !== undefined) {
    const mask = await encodeMask(await readFile(image.mask_path), image.width, image.height);
    const maskFile = maskName(name);
    await files.putResult(maskFile, mask);
    change = { maskFile, changedFraction: image.changed_fraction, wholeFrame: image.whole_frame ?? false };
  }
  await files.putResult(name, encoded, g.params.response_format === "b64_json"); // answered from memory
  const encodeMs = performance.now() - t0;
  const { prompt_tokens, ...engine } = engineTimings as Record<string, unknown>; // see withPromptTokens
  return {
    resultFile: name,
    width: image.width,
    height: image.height,
    timings: {
      queue: (g.startedAt ?? g.enqueuedAt) - g.enqueuedAt,
      inference: round(engineTimings.total ?? 0),
      encode: round(encodeMs),
      engine: engine as Record<string, number>,
      ...(isPromptTokens(prompt_tokens) ? { prompt_tokens } : {}),
    },
    resultHash: createHash("sha256").update(encoded).digest("hex"),
    ...(change ? { change } : {}),
  };
}

const round = (ms: number) => Math.round(ms * 10) / 10;

function isPromptTokens(v: unknown): v is NonNullable<Timings["prompt_tokens"]> {
  const o = v as Record<string, unknown> | null;
  return (
    typeof o === "object" &&
    o !== null &&
    ["t5", "t5_max", "clip", "clip_max"].every((k) => Number.isInteger(o[k])) &&
    typeof o.truncated === "boolean"
  );
}
