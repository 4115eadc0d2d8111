// The input image: where it comes from (a local file, a URL, an image on this server), its
// decoded size, and the bytes sent. A photo is held as a Blob and shown from a blob: URL; it
// becomes a data URI only in the request that sends it, never in the page's state or storage.

/** Where the form's image comes from; what the workspace keeps across reloads. */
export type ImageRef =
  /** a file from this computer, kept in the browser's IndexedDB under `key` until it is sent */
  | { kind: "local"; key: string; name: string; type: string }
  /** an http(s) URL, sent as it is (the server fetches it) */
  | { kind: "url"; url: string; name: string }
  /** an image on this server: a generation's input or result */
  | { kind: "server"; url: string; name: string; generationId: string | null; role: "input" | "result" };

export interface InputImage {
  ref: ImageRef;
  /** shown in the form: a blob: URL, or the URL itself */
  previewUrl: string;
  width: number | null;
  height: number | null;
  /** MIME type of the bytes (null for a URL the server fetches) */
  type: string | null;
  bytes: number | null;
}

/** What the server decodes (README: jpeg, png, gif, webp). */
export const ACCEPTED_TYPES = ["image/jpeg", "image/png", "image/webp", "image/gif"];

/** The type from the file's first bytes (a browser's file.type can be empty or wrong). */
export function sniffType(head: Uint8Array): string | null {
  const at = (i: number, ...b: number[]) => b.every((x, k) => head[i + k] === x);
  const ascii = (i: number, s: string) => at(i, ...[...s].map((c) => c.charCodeAt(0)));
  if (at(0, 0xff, 0xd8, 0xff)) return "image/jpeg";
  if (at(0, 0x89, 0x50, 0x4e, 0x47)) return "image/png";
  if (ascii(0, "GIF8")) return "image/gif";
  if (ascii(0, "RIFF") && ascii(8, "WEBP")) return "image/webp";
  if (ascii(4, "ftyp")) {
    const brand = String.fromCharCode(...head.slice(8, 12));
    if (brand.startsWith("avi")) return "image/avif";
    if (/^(hei|hev|mif|msf)/.test(brand)) return "image/heic";
  }
  return null;
}

const NAMES: Record<string, string> = {
  "image/avif": "AVIF",
  "image/heic": "HEIC",
  "image/heif": "HEIF",
  "image/svg+xml": "SVG",
  "image/bmp": "BMP",
  "image/tiff": "TIFF",
};

/** Why a file cannot be the input, or null when it can (checked when picked, not at Run). */
export function refusal(name: string, declared: string, sniffed: string | null): string | null {
  const type = sniffed ?? declared;
  if (ACCEPTED_TYPES.includes(type)) return null;
  const what = NAMES[type] ?? (type.startsWith("image/") ? type.slice(6).toUpperCase() : null);
  if (what)
    return `${name || "This file"} is ${what}, which the server cannot read: use JPEG, PNG, WebP or GIF (export or screenshot it as one of those).`;
  return `${name || "This file"} is not an image (${type || "unknown type"}): use JPEG, PNG, WebP or GIF.`;
}

/** Largest image sent as it is; past it (about 22 MB as base64) it is re-encoded as JPEG first. */
export const MAX_SEND_BYTES = 16 * 1024 * 1024;

/** The browser's side of images, injected so the form controller is tested without one. */
export interface ImageDeps {
  measure(blob: Blob): Promise<{ width: number; height: number } | null>;
  measureUrl(url: string): Promise<{ width: number; height: number } | null>;
  objectUrl(blob: Blob): string;
  revoke(url: string): void;
  dataUri(blob: Blob): Promise<string>;
  /** the same picture as a JPEG (smaller), for an image too large to send as it is */
  reencode(blob: Blob): Promise<Blob>;
}

export const browserImages: ImageDeps = {
  async measure(blob) {
    try {
      const bmp = await createImageBitmap(blob);
      const size = { width: bmp.width, height: bmp.height };
      bmp.close();
      return size;
    } catch {
      return null;
    }
  },
  measureUrl: (url) =>
    new Promise((resolve) => {
      const img = new Image();
      img.onload = () => resolve({ width: img.naturalWidth, height: img.naturalHeight });
      img.onerror = () => resolve(null);
      img.src = url;
    }),
  objectUrl: (blob) => URL.createObjectURL(blob),
  revoke: (url) => URL.revokeObjectURL(url),
  dataUri: (blob) =>
    new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result));
      reader.onerror = () => reject(reader.error ?? new Error("the image could not be read"));
      reader.readAsDataURL(blob);
    }),
  async reencode(blob) {
    const bmp = await createImageBitmap(blob);
    const canvas = new OffscreenCanvas(bmp.width, bmp.height);
    const g = canvas.getContext("2d");
    if (!g) throw new Error("this browser cannot re-encode the image");
    g.drawImage(bmp, 0, 0);
    bmp.close();
    return canvas.convertToBlob({ type: "image/jpeg", quality: 0.92 });
  },
};

/** A file name safe to write into copied code ("My photo (1).JPG" → "My_photo_1_.JPG"). */
export function codeFileName(name: string, type: string | null): string {
  const ext =
    type === "image/png" ? "png" : type === "image/webp" ? "webp" : type === "image/gif" ? "gif" : "jpg";
  const clean = name.replace(/[^\w.-]+/g, "_").replace(/^[._-]+/, "");
  return /\.\w+$/.test(clean) ? clean : `${clean || "input"}.${ext}`;
}
