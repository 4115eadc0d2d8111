// sharp lives behind this module: decoding input images to the engine's raw RGB and encoding
// the engine's raw RGB outputs. Nothing else imports sharp.
import sharp from "sharp";
import { ApiError } from "../errors.js";

export const INPUT_FORMATS = ["jpeg", "png", "gif", "webp"] as const;
// The engine refuses inputs wider or taller than this (engine/kontext_engine/resolution.py);
// it resizes the condition image to about 1 MP anyway, so larger inputs are shrunk to fit.
export const ENGINE_MAX_SIDE = 8192;

sharp.cache(false); // inputs are content-addressed on disk; libvips' cache would only hold memory

export interface DecodedImage {
  rgb: Buffer;
  width: number;
  height: number;
}

/** Decodes jpeg/png/gif(first frame)/webp: EXIF orientation applied, alpha flattened on white. */
export async function decodeInput(bytes: Buffer, maxPixels: number): Promise<DecodedImage> {
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
): Promise<Buffer> {
  const img = sharp(rgb, { raw: { width, height, channels: 3 } });
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

/** Width, height and format of an encoded image (used by tests and the preview path). */
export async function probe(bytes: Buffer): Promise<{ format: string; width: number; height: number }> {
  const m = await sharp(bytes).metadata();
  return { format: m.format ?? "unknown", width: m.width ?? 0, height: m.height ?? 0 };
}

function short(err: unknown): string {
  return String((err as Error).message ?? err)
    .split("\n")[0]
    ?.slice(0, 200) as string;
}
