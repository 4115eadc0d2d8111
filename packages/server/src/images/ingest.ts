// Turns a request's input_image (URL, data URI or raw base64) into a stored input: the image's
// own bytes, checked at submission and decoded for the engine only when its generation runs.
import { createHash } from "node:crypto";
import { ApiError, forImageField } from "../errors.js";
import type { FileStore, StoredInput } from "../storage/files.js";
import { AddressPolicy } from "./address.js";
import { inspectInput } from "./codec.js";
import { type FetchLimits, fetchImage } from "./fetch.js";

export interface ImageIngestOptions extends FetchLimits {
  maxPixels: number;
  fetchAllow: readonly string[];
  maxBytes: number;
}

/** One image of a request: its field and what was sent (a string as the schema takes it, or an upload's bytes). */
export interface ImageSource {
  field: string;
  source: string | Buffer;
}

const DATA_URI = /^data:([\w.+-]+\/[\w.+-]+)?((?:;[\w-]+=[^;,]*)*)(;base64)?,/i;
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

export class ImageIngest {
  private readonly policy: AddressPolicy;
  constructor(
    private readonly files: FileStore,
    private readonly options: ImageIngestOptions,
  ) {
    this.policy = new AddressPolicy(options.fetchAllow);
  }

  /** The bytes an input_image string stands for. */
  async bytesOf(input: string): Promise<Buffer> {
    const trimmed = input.trim();
    if (/^https?:\/\//i.test(trimmed)) return fetchImage(trimmed, this.policy, this.options);
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) {
      throw new ApiError("input_image_invalid", {
        reason: `only http(s) URLs, data URIs and base64 are accepted, got a ${trimmed.split(":")[0]}: URL`,
      });
    }
    const m = DATA_URI.exec(trimmed);
    if (m) {
      if (!m[3])
        throw new ApiError("input_image_invalid", { reason: "a data URI must be base64-encoded (;base64,)" });
      return this.decodeBase64(trimmed.slice(m[0].length));
    }
    return this.decodeBase64(trimmed);
  }

  private decodeBase64(b64: string): Buffer {
    const clean = b64.replace(/\s+/g, "");
    if (clean.length === 0 || !BASE64.test(clean)) {
      throw new ApiError("input_image_invalid", {
        reason: `must be an http(s) URL, a data URI or base64, got ${JSON.stringify(b64.slice(0, 40))}${b64.length > 40 ? "..." : ""}`,
      });
    }
    const bytes = Buffer.from(clean, clean.includes("-") || clean.includes("_") ? "base64url" : "base64");
    if (bytes.length > this.options.maxBytes) {
      throw new ApiError("input_image_too_large", {
        reason: `${bytes.length} bytes is more than ${this.options.maxBytes} (KONTEXT_FETCH_MAX_BYTES)`,
      });
    }
    return bytes;
  }

  /**
   * Fetches or decodes the image, stores its bytes by their sha256 (checked, not decoded: the
   * engine's pixels are decoded when its generation runs) and calls `use` with the stored input,
   * which stays pinned meanwhile. When `use` (or storing) fails, what this call stored is removed
   * again unless a generation or another submission uses it: a refused submission leaves nothing.
   * An image error names `field` (input_image unless given).
   */
  async withInput<T>(
    input: string | Buffer,
    use: (stored: StoredInput) => Promise<T>,
    field = "input_image",
  ): Promise<T> {
    let bytes: Buffer;
    try {
      bytes = typeof input === "string" ? await this.bytesOf(input) : input; // a Buffer: an upload's bytes
    } catch (err) {
      throw forImageField(err, field);
    }
    const hash = createHash("sha256").update(bytes).digest("hex");
    const unpin = await this.files.pinInput(hash);
    let storing = false;
    try {
      let stored = await this.files.findInput(hash);
      if (stored) await this.files.touchInput(hash);
      else {
        const info = await inspectInput(bytes, this.options.maxPixels).catch((err) => {
          throw forImageField(err, field);
        });
        storing = true;
        stored = await this.files.putInput(hash, bytes, info);
      }
      return await use(stored);
    } catch (err) {
      unpin();
      if (storing) await this.files.removeInputIfUnused(hash).catch(() => undefined);
      throw err;
    } finally {
      unpin();
    }
  }

  /**
   * withInput for several images (input_image first, then the others a request has), each named
   * by its field in errors: all stay pinned while `use` runs, and a refusal removes what was stored.
   */
  withInputs<T>(images: readonly ImageSource[], use: (stored: StoredInput[]) => Promise<T>): Promise<T> {
    const next = (i: number, held: StoredInput[]): Promise<T> => {
      const image = images[i];
      if (!image) return use(held);
      return this.withInput(image.source, (s) => next(i + 1, [...held, s]), image.field);
    };
    return next(0, []);
  }
}
