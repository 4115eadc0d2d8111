// The mask painted over the input image (mask_image: white = change, black = keep). Strokes go
// onto a working canvas of at most MAX_WORK_SIDE px a side with the input's shape, so a 12 MP
// photo paints as fast as a small one; the PNG sent is drawn from it at the input's own size,
// its edge blurred by the feather first. The canvas work sits behind MaskSurface (surface.ts in
// the browser), so this controller is unit-tested without one.
import { Store, type Timers } from "../../app/store.js";
import type { BlobStore } from "../workspace/blobs.js";

/** The working canvas's longest side: about a display's width, not the photo's. */
export const MAX_WORK_SIDE = 2048;
/** The IndexedDB key of the painted mask (a PNG of the working canvas). */
export const MASK_KEY = "form-mask";

export interface Size {
  width: number;
  height: number;
}

export interface Point {
  x: number;
  y: number;
}

/** The canvas side of the mask: strokes, erase, invert, and the PNGs in and out. */
export interface MaskSurface {
  readonly size: Size;
  /** a stroke through `points` (working px) of `radius`; erase takes paint away */
  stroke(points: readonly Point[], radius: number, erase: boolean): void;
  clear(): void;
  /** painted ↔ unpainted, alpha exactly inverted */
  invert(): void;
  /** whether any pixel is painted */
  painted(): boolean;
  /** the working canvas as a PNG (kept across reloads) */
  save(): Promise<Blob>;
  load(blob: Blob): Promise<void>;
  /** the mask to send: white where painted on black, edge blurred by `feather` working px, at `size` */
  export(size: Size, feather: number): Promise<Blob>;
}

export interface MaskDeps {
  surface(size: Size): MaskSurface;
  blobs: BlobStore;
  timers: Timers;
  dataUri(blob: Blob): Promise<string>;
}

/** What the workspace keeps of the mask (its pixels are in IndexedDB under MASK_KEY). */
export interface MaskMeta {
  /** the working canvas's size */
  width: number;
  height: number;
  feather: number;
  painted: boolean;
}

export interface MaskState {
  /** the working canvas's size; null until the input's size is known */
  size: Size | null;
  /** the input image's size (what is sent) */
  input: Size | null;
  painted: boolean;
  /** brush radius in screen px (the painter scales it to the working canvas) */
  brush: number;
  feather: number;
  erase: boolean;
  /** the painter dialog is open */
  open: boolean;
  /** moves with every change of the pixels (the overlays redraw on it) */
  version: number;
}

export const FEATHER_MAX = 64;
export const BRUSH_MIN = 2;
export const BRUSH_MAX = 200;

/** The working canvas for an input: its shape, its longest side at most MAX_WORK_SIDE. */
export function workSize(input: Size): Size {
  const scale = Math.min(1, MAX_WORK_SIDE / Math.max(input.width, input.height));
  return {
    width: Math.max(1, Math.round(input.width * scale)),
    height: Math.max(1, Math.round(input.height * scale)),
  };
}

const sameShape = (a: Size, b: Size) => Math.abs(a.width / a.height - b.width / b.height) < 0.01;

export class Mask extends Store<MaskState> {
  private surf: MaskSurface | null = null;
  private saveTimer: unknown = null;

  constructor(private readonly deps: MaskDeps) {
    super({
      size: null,
      input: null,
      painted: false,
      brush: 24,
      feather: 8,
      erase: false,
      open: false,
      version: 0,
    });
  }

  /** The canvas the painter shows (null until the input's size is known). */
  get surface(): MaskSurface | null {
    return this.surf;
  }

  /**
   * The input image's size, once known. Same shape: the painting stays (the same picture, e.g.
   * the server's copy after a run); another shape starts an empty mask.
   */
  setInput(input: Size | null): void {
    const was = this.state.input;
    if (input?.width === was?.width && input?.height === was?.height) return;
    if (!input) {
      this.update({ input: null });
      return;
    }
    const size = workSize(input);
    if (this.surf && sameShape(this.surf.size, size)) {
      this.update({ input });
      return;
    }
    this.surf = this.deps.surface(size);
    this.update({ input, size, painted: false, version: this.state.version + 1 });
  }

  /** Another picture is the input: what was painted was for the last one. */
  reset(): void {
    this.deps.timers.clearTimeout(this.saveTimer);
    this.surf = null;
    this.update({ size: null, input: null, painted: false, open: false, version: this.state.version + 1 });
    void this.deps.blobs.delete(MASK_KEY).catch(() => undefined);
  }

  setBrush(brush: number): void {
    this.update({ brush: Math.min(BRUSH_MAX, Math.max(BRUSH_MIN, brush)) });
  }

  setFeather(feather: number): void {
    this.update({ feather: Math.min(FEATHER_MAX, Math.max(0, feather)) });
  }

  setErase(erase: boolean): void {
    this.update({ erase });
  }

  setOpen(open: boolean): void {
    this.update({ open });
  }

  /** A stroke through `points` (working px) with the brush or the eraser; `scale`: working px per screen px. */
  stroke(points: readonly Point[], scale = 1): void {
    if (!this.surf || points.length === 0) return;
    this.surf.stroke(points, this.state.brush * scale, this.state.erase);
    this.changed(this.state.erase ? this.surf.painted() : true);
  }

  clear(): void {
    if (!this.surf) return;
    this.surf.clear();
    this.changed(false);
  }

  invert(): void {
    if (!this.surf) return;
    this.surf.invert();
    this.changed(this.surf.painted());
  }

  private changed(painted: boolean): void {
    this.update({ painted, version: this.state.version + 1 });
    this.deps.timers.clearTimeout(this.saveTimer);
    this.saveTimer = this.deps.timers.setTimeout(() => void this.savePixels(), 400);
  }

  /** Writes the pixels now (the page is going away, or a test). */
  async savePixels(): Promise<void> {
    this.deps.timers.clearTimeout(this.saveTimer);
    const surf = this.surf;
    if (!surf) return;
    if (!this.state.painted) return this.deps.blobs.delete(MASK_KEY).catch(() => undefined);
    const png = await surf.save();
    // another picture came while encoding: these pixels are not its mask
    if (this.surf === surf) await this.deps.blobs.put(MASK_KEY, png).catch(() => undefined);
  }

  meta(): MaskMeta | null {
    const { size, feather, painted } = this.state;
    return size && painted ? { ...size, feather, painted } : null;
  }

  /** A saved mask back on its canvas, if it was painted for a picture of the input's shape. */
  async restore(meta: MaskMeta, input: Size | null): Promise<void> {
    this.setFeather(meta.feather);
    if (!input || !sameShape(meta, input)) return;
    const blob = await this.deps.blobs.get(MASK_KEY).catch(() => null);
    if (!blob) return;
    this.setInput(input);
    if (!this.surf) return;
    await this.surf.load(blob);
    this.update({ painted: this.surf.painted(), version: this.state.version + 1 });
  }

  /** The PNG to send as mask_image (white = change), at the input's size; null when nothing is painted. */
  async png(): Promise<Blob | null> {
    const { painted, input, feather } = this.state;
    if (!painted || !this.surf || !input) return null;
    return this.surf.export(input, feather);
  }

  async dataUri(): Promise<string | null> {
    const png = await this.png();
    return png ? this.deps.dataUri(png) : null;
  }
}
