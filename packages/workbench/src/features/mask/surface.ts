// The mask's canvas in the browser. Paint is kept as alpha on a transparent canvas (its colour is
// only what the overlay shows); the PNG sent is white where painted, on black.
import type { MaskSurface, Point, Size } from "./mask.js";

/** The overlay's colour: what is painted shows in it, translucent, over the picture. */
export const PAINT = "rgb(255 40 120)";

function context(c: HTMLCanvasElement | OffscreenCanvas): CanvasRenderingContext2D {
  const g = c.getContext("2d", { willReadFrequently: true });
  if (!g) throw new Error("this browser cannot draw on a canvas");
  return g as CanvasRenderingContext2D;
}

const toBlob = (c: HTMLCanvasElement) =>
  new Promise<Blob>((resolve, reject) =>
    c.toBlob((b) => (b ? resolve(b) : reject(new Error("the mask could not be encoded"))), "image/png"),
  );

export class CanvasSurface implements MaskSurface {
  /** on the page as the painter's overlay */
  readonly canvas: HTMLCanvasElement;
  private readonly g: CanvasRenderingContext2D;

  constructor(readonly size: Size) {
    this.canvas = document.createElement("canvas");
    this.canvas.width = size.width;
    this.canvas.height = size.height;
    this.g = context(this.canvas);
  }

  stroke(points: readonly Point[], radius: number, erase: boolean): void {
    const g = this.g;
    g.save();
    g.globalCompositeOperation = erase ? "destination-out" : "source-over";
    g.strokeStyle = g.fillStyle = PAINT;
    g.lineWidth = radius * 2;
    g.lineCap = g.lineJoin = "round";
    const [first, ...rest] = points;
    if (first && rest.length === 0) {
      // a single tap: a dot
      g.beginPath();
      g.arc(first.x, first.y, radius, 0, Math.PI * 2);
      g.fill();
    } else if (first) {
      g.beginPath();
      g.moveTo(first.x, first.y);
      for (const p of rest) g.lineTo(p.x, p.y);
      g.stroke();
    }
    g.restore();
  }

  clear(): void {
    this.g.clearRect(0, 0, this.size.width, this.size.height);
  }

  invert(): void {
    // xor with an opaque fill: alpha a becomes 1 − a, exactly
    const g = this.g;
    g.save();
    g.globalCompositeOperation = "xor";
    g.fillStyle = PAINT;
    g.fillRect(0, 0, this.size.width, this.size.height);
    g.restore();
  }

  /** Painted at least half: the server splits the mask at half, so fainter edges (an erased stroke's) change nothing. */
  painted(): boolean {
    const { data } = this.g.getImageData(0, 0, this.size.width, this.size.height);
    for (let i = 3; i < data.length; i += 4) if ((data[i] as number) >= 128) return true;
    return false;
  }

  save(): Promise<Blob> {
    return toBlob(this.canvas);
  }

  async load(blob: Blob): Promise<void> {
    const bmp = await createImageBitmap(blob);
    this.clear();
    this.g.drawImage(bmp, 0, 0, this.size.width, this.size.height);
    bmp.close();
  }

  async export(size: Size, feather: number): Promise<Blob> {
    const { width: w, height: h } = this.size;
    // white where painted, on black, blurred at the working size (cheap) and then scaled up
    const white = document.createElement("canvas");
    white.width = w;
    white.height = h;
    const hg = context(white);
    hg.drawImage(this.canvas, 0, 0);
    hg.globalCompositeOperation = "source-in";
    hg.fillStyle = "#fff";
    hg.fillRect(0, 0, w, h);
    // The blur reads past the edges: the mask's edge pixels are stretched into a margin first, so
    // paint up to the border stays white there instead of fading into the outside.
    const p = feather > 0 ? Math.ceil(feather * 3) : 0;
    const pad = document.createElement("canvas");
    pad.width = w + 2 * p;
    pad.height = h + 2 * p;
    const pg = context(pad);
    pg.fillStyle = "#000";
    pg.fillRect(0, 0, pad.width, pad.height);
    if (p > 0) pg.filter = `blur(${feather}px)`;
    const edges: Array<[number, number, number, number, number, number, number, number]> = [
      [0, 0, w, h, p, p, w, h], // the mask itself
      [0, 0, 1, h, 0, p, p, h], // left
      [w - 1, 0, 1, h, p + w, p, p, h], // right
      [0, 0, w, 1, p, 0, w, p], // top
      [0, h - 1, w, 1, p, p + h, w, p], // bottom
      [0, 0, 1, 1, 0, 0, p, p],
      [w - 1, 0, 1, 1, p + w, 0, p, p],
      [0, h - 1, 1, 1, 0, p + h, p, p],
      [w - 1, h - 1, 1, 1, p + w, p + h, p, p],
    ];
    // one layer, blurred once: drawn unblurred onto a scratch canvas, then that onto `pad`
    const layer = document.createElement("canvas");
    layer.width = pad.width;
    layer.height = pad.height;
    const lg = context(layer);
    for (const [sx, sy, sw, sh, dx, dy, dw, dh] of p > 0 ? edges : edges.slice(0, 1))
      lg.drawImage(white, sx, sy, sw, sh, dx, dy, dw, dh);
    pg.drawImage(layer, 0, 0);
    const work = document.createElement("canvas");
    work.width = w;
    work.height = h;
    context(work).drawImage(pad, p, p, w, h, 0, 0, w, h);
    if (size.width === w && size.height === h) return toBlob(work);
    const out = document.createElement("canvas");
    out.width = size.width;
    out.height = size.height;
    const og = context(out);
    og.imageSmoothingQuality = "high";
    og.drawImage(work, 0, 0, size.width, size.height);
    return toBlob(out);
  }
}
