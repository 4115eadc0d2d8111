// sharp lives behind this module: checking input images at submission, decoding them to the
// engine's raw RGB just before a run, encoding the engine's raw RGB outputs, and the history's
// thumbnails. Nothing else imports sharp. Full decodes (and the bounded checks) run at most DECODE_SLOTS at a time: a
// 40 MP input is 120 MB of pixels while it is decoded.
import sharp from "sharp";
import { ApiError } from "../errors.js";

export const INPUT_FORMATS = ["jpeg", "png", "gif", "webp"] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];
/** Decodes (and submission checks) running at once, in this process. */
export const DECODE_SLOTS = 2;
// The engine refuses inputs wider or taller than this (engine/kontext_engine/resolution.py);
// it resizes the condition image to about 1 MP anyway, so larger inputs are shrunk to fit.
export const ENGINE_MAX_SIDE = 8192;

sharp.cache(false); // inputs are content-addressed on disk; libvips' cache would only hold memory

export interface DecodedImage {
  rgb: Buffer;
  width: number;
  height: number;
}

/** What an input image is, as the engine will see it, without its pixels. */
export interface InputInfo {
  format: InputFormat;
  /** Oriented (EXIF) and shrunk to ENGINE_MAX_SIDE: the size decodeInput gives. */
  width: number;
  height: number;
}

/** Format, pixel count and the oriented size, from the header alone; 422/413 as decodeInput. */
async function headerOf(
  bytes: Buffer,
  maxPixels: number,
): Promise<InputInfo & { frameWidth: number; frameHeight: number }> {
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new ApiError("input_image_undecodable", { reason: `not a readable image (${short(err)})` });
  }
  const format = meta.format as string | undefined;
  if (!format || !(INPUT_FORMATS as readonly string[]).includes(format)) {
    throw new ApiError("input_image_undecodable", {
      reason: `unsupported format ${format ?? "unknown"}; send jpeg, png, gif or webp`,
    });
  }
  const w = meta.width ?? 0;
  const h = meta.pageHeight ?? meta.height ?? 0; // an animated image's height is all frames stacked
  if (w * h > maxPixels) {
    throw new ApiError("input_image_too_large", {
      reason: `${w}×${h} is ${w * h} pixels, more than ${maxPixels} (KONTEXT_MAX_INPUT_PIXELS)`,
    });
  }
  const swap = (meta.orientation ?? 1) >= 5; // 5–8 turn the image a quarter
  const [ow, oh] = swap ? [h, w] : [w, h];
  // resize({fit: "inside", withoutEnlargement}) as sharp computes it: the long side to the cap
  const scale = Math.min(1, ENGINE_MAX_SIDE / ow, ENGINE_MAX_SIDE / oh);
  const shrink = (side: number) => (scale === 1 ? side : Math.max(1, Math.round(side * scale)));
  return {
    format: format as InputFormat,
    width: ow >= oh ? Math.min(ow, ENGINE_MAX_SIDE) : shrink(ow),
    height: oh > ow ? Math.min(oh, ENGINE_MAX_SIDE) : shrink(oh),
    frameWidth: w,
    frameHeight: h,
  };
}

/**
 * Checks an input at submission without keeping its pixels: the header (format, size) and a
 * decode of all its data into a thumbnail, so corrupt or truncated data is refused (422) now,
 * as decodeInput would, rather than when its generation runs.
 */
export async function inspectInput(bytes: Buffer, maxPixels: number): Promise<InputInfo> {
  const info = await headerOf(bytes, maxPixels);
  await decodeSlot(async () => {
    try {
      await sharp(bytes, { limitInputPixels: maxPixels, failOn: "truncated", pages: 1 })
        .resize({ width: 64, height: 64, fit: "inside", withoutEnlargement: true })
        .flatten({ background: { r: 255, g: 255, b: 255 } })
        .toColourspace("srgb")
        .removeAlpha()
        .raw()
        .toBuffer();
    } catch (err) {
      throw new ApiError("input_image_undecodable", {
        reason: `the ${info.format} data is corrupt (${short(err)})`,
      });
    }
  });
  return { format: info.format, width: info.width, height: info.height };
}

/** Decodes jpeg/png/gif(first frame)/webp: EXIF orientation applied, alpha flattened on white. */
export async function decodeInput(bytes: Buffer, maxPixels: number): Promise<DecodedImage> {
  const { format } = await headerOf(bytes, maxPixels);
  return decodeSlot(() => decodePixels(bytes, format, maxPixels));
}

/**
 * decodeInput, handing the pixels to `sink` (which writes them out) while this decode's slot is
 * still held: at most DECODE_SLOTS decoded images are in memory at once. Returns their size.
 */
export async function decodeInputInto(
  bytes: Buffer,
  maxPixels: number,
  sink: (img: DecodedImage) => Promise<void>,
): Promise<{ width: number; height: number }> {
  const { format } = await headerOf(bytes, maxPixels);
  return decodeSlot(async () => {
    const img = await decodePixels(bytes, format, maxPixels);
    await sink(img);
    return { width: img.width, height: img.height };
  });
}

async function decodePixels(bytes: Buffer, format: string, maxPixels: number): Promise<DecodedImage> {
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels, failOn: "truncated", pages: 1 })
      .rotate() // EXIF orientation
      .resize({ width: ENGINE_MAX_SIDE, height: ENGINE_MAX_SIDE, fit: "inside", withoutEnlargement: true })
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace("srgb")
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { rgb: data, width: info.width, height: info.height };
  } catch (err) {
    throw new ApiError("input_image_undecodable", {
      reason: `the ${format} data is corrupt (${short(err)})`,
    });
  }
}

/** A mask image as the engine reads it, and what it says. */
export interface DecodedMask {
  /** Raw 8-bit grey at the size asked for: 255 = change, 0 = keep. */
  grey: Buffer;
  /** It was read by its alpha (it has transparent pixels: transparent = change), not its luminance. */
  byAlpha: boolean;
  /** Pixels at 128 or above: what the engine changes (it splits the mask at half). */
  changed: number;
}

/**
 * Decodes a mask_image (EXIF orientation applied) to raw grey at width × height (the input
 * image's decoded size; stretched to it when its own differs). A mask with any transparent
 * pixel counts by its alpha, transparent = change (an alpha-only PNG, OpenAI's masks); any other
 * by its luminance, white = change. `sink` gets the pixels while the decode slot is held.
 */
export async function decodeMask(
  bytes: Buffer,
  maxPixels: number,
  width: number,
  height: number,
  sink?: (mask: DecodedMask) => Promise<void>,
): Promise<Omit<DecodedMask, "grey">> {
  const { format } = await headerOf(bytes, maxPixels);
  return decodeSlot(async () => {
    let rgba: Buffer;
    try {
      const { data, info } = await sharp(bytes, {
        limitInputPixels: maxPixels,
        failOn: "truncated",
        pages: 1,
      })
        .rotate()
        .resize({ width, height, fit: "fill" })
        .toColourspace("srgb")
        .ensureAlpha()
        .raw()
        .toBuffer({ resolveWithObject: true });
      if (info.channels !== 4) throw new Error(`decoded to ${info.channels} channels`);
      rgba = data;
    } catch (err) {
      throw new ApiError("input_image_undecodable", {
        reason: `the ${format} data is corrupt (${short(err)})`,
      });
    }
    const n = width * height;
    let byAlpha = false;
    for (let i = 3; i < rgba.length; i += 4) {
      if ((rgba[i] as number) < 255) {
        byAlpha = true;
        break;
      }
    }
    const grey = Buffer.allocUnsafe(n);
    let changed = 0;
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      const v = byAlpha
        ? 255 - (rgba[j + 3] as number)
        : Math.round(
            0.2126 * (rgba[j] as number) +
              0.7152 * (rgba[j + 1] as number) +
              0.0722 * (rgba[j + 2] as number),
          ); // Rec. 709 luma
      grey[i] = v;
      if (v >= 128) changed++;
    }
    const mask = { grey, byAlpha, changed };
    await sink?.(mask);
    return { byAlpha, changed };
  });
}

/** The content type an input's original bytes are served with. */
export const INPUT_CONTENT_TYPES: Record<InputFormat, string> = {
  jpeg: "image/jpeg",
  png: "image/png",
  gif: "image/gif",
  webp: "image/webp",
};

export type OutputFormat = "webp" | "jpg" | "png";
export const CONTENT_TYPES: Record<OutputFormat, string> = {
  webp: "image/webp",
  jpg: "image/jpeg",
  png: "image/png",
};

/** Encodes a raw RGB buffer to webp, jpg or png; quality (0–100) is ignored for png. */
export async function encodeOutput(
  rgb: Buffer,
  width: number,
  height: number,
  format: OutputFormat,
  quality: number,
  alpha?: Buffer | null,
): Promise<Buffer> {
  let img = sharp(rgb, { raw: { width, height, channels: 3 } });
  // An input's alpha given back (output_resolution input): only png and webp keep it.
  if (alpha && format !== "jpg") img = img.joinChannel(alpha, { raw: { width, height, channels: 1 } });
  const q = Math.max(1, quality); // sharp's quality starts at 1; 0 means "smallest" here
  switch (format) {
    case "webp":
      return img.webp({ quality: q }).toBuffer();
    case "jpg":
      return img.jpeg({ quality: q, mozjpeg: true }).toBuffer();
    case "png":
      return img.png().toBuffer();
  }
}

/**
 * The alpha channel of an encoded input, EXIF orientation applied, as raw 8-bit bytes at
 * width × height (resized when the input was larger); null when the input has none.
 */
export async function alphaOf(bytes: Buffer, width: number, height: number): Promise<Buffer | null> {
  const meta = await sharp(bytes, { limitInputPixels: false, pages: 1 }).metadata();
  if (!meta.hasAlpha) return null;
  return decodeSlot(async () => {
    const { data, info } = await sharp(bytes, { limitInputPixels: false, pages: 1 })
      .rotate()
      .extractChannel("alpha")
      .resize({ width, height, fit: "fill" })
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 1 || info.width !== width || info.height !== height)
      throw new Error(`the input's alpha decoded to ${info.width}×${info.height}×${info.channels}`);
    return data;
  });
}

/** An encoded image's own size, EXIF orientation applied (before any cap), from its header. */
export async function orientedSize(file: string): Promise<{ width: number; height: number }> {
  const meta = await sharp(file, { limitInputPixels: false }).metadata();
  const w = meta.width ?? 0;
  const h = meta.pageHeight ?? meta.height ?? 0;
  return (meta.orientation ?? 1) >= 5 ? { width: h, height: w } : { width: w, height: h };
}

/** A change mask (raw 8-bit greyscale, width × height) as a greyscale PNG. */
export async function encodeMask(grey: Buffer, width: number, height: number): Promise<Buffer> {
  return sharp(grey, { raw: { width, height, channels: 1 } })
    .toColourspace("b-w")
    .png()
    .toBuffer();
}

/**
 * OpenAI's edit mask (an image whose fully transparent pixels mark where to edit) as a mask_image
 * that means the same: a greyscale PNG, white where alpha is 0, black elsewhere (a half-transparent
 * pixel is kept, as OpenAI defines it). `changed`: the pixels to edit. Null when it has no alpha.
 */
export async function maskFromTransparency(
  bytes: Buffer,
  maxPixels: number,
): Promise<{ png: Buffer; changed: number } | null> {
  const { format } = await headerOf(bytes, maxPixels);
  const meta = await sharp(bytes, { limitInputPixels: false, pages: 1 }).metadata();
  if (!meta.hasAlpha) return null;
  return decodeSlot(async () => {
    let alpha: { data: Buffer; info: sharp.OutputInfo };
    try {
      alpha = await sharp(bytes, { limitInputPixels: maxPixels, failOn: "truncated", pages: 1 })
        .rotate()
        .extractChannel("alpha")
        .raw()
        .toBuffer({ resolveWithObject: true });
    } catch (err) {
      throw new ApiError("input_image_undecodable", {
        reason: `the ${format} data is corrupt (${short(err)})`,
      });
    }
    const { data, info } = alpha;
    const grey = Buffer.allocUnsafe(data.length);
    let changed = 0;
    for (let i = 0; i < data.length; i++) {
      const edit = data[i] === 0;
      grey[i] = edit ? 255 : 0;
      if (edit) changed++;
    }
    return { png: await encodeMask(grey, info.width, info.height), changed };
  });
}

/**
 * A WebP thumbnail whose longest side is at most `size` (never enlarged): the first frame, EXIF
 * orientation applied. `raw` gives the size of raw RGB bytes (inputs an earlier version stored
 * decoded). Runs in a decode slot: a large input is many megabytes of pixels while it shrinks.
 */
export async function thumbnail(
  bytes: Buffer,
  size: number,
  raw?: { width: number; height: number },
): Promise<Buffer> {
  return decodeSlot(() =>
    (raw ? sharp(bytes, { raw: { ...raw, channels: 3 } }) : sharp(bytes, { pages: 1 }))
      .rotate()
      .resize({ width: size, height: size, fit: "inside", withoutEnlargement: true })
      .webp({ quality: 80 })
      .toBuffer(),
  );
}

/** Width, height and format of an encoded image (used by tests and the preview path). */
export async function probe(bytes: Buffer): Promise<{ format: string; width: number; height: number }> {
  const m = await sharp(bytes).metadata();
  return { format: m.format ?? "unknown", width: m.width ?? 0, height: m.height ?? 0 };
}

let decoding = 0;
const waitingForSlot: Array<() => void> = [];

/** Runs `fn` once fewer than DECODE_SLOTS decodes are running in this process. */
async function decodeSlot<T>(fn: () => Promise<T>): Promise<T> {
  if (decoding >= DECODE_SLOTS) await new Promise<void>((r) => waitingForSlot.push(r));
  else decoding++;
  try {
    return await fn();
  } finally {
    const next = waitingForSlot.shift();
    if (next)
      next(); // the slot passes straight on
    else decoding--;
  }
}

function short(err: unknown): string {
  return String((err as Error).message ?? err)
    .split("\n")[0]
    ?.slice(0, 200) as string;
}
