// Test double of the mask's canvas: one byte per working pixel (painted or not), discs stamped
// along each stroke; its PNGs are JSON that says what was asked for.
import type { MaskSurface, Point, Size } from "./mask.js";

export class GridSurface implements MaskSurface {
  px: Uint8Array;
  constructor(readonly size: Size) {
    this.px = new Uint8Array(size.width * size.height);
  }
  private disc(p: Point, r: number, v: number): void {
    const { width: w, height: h } = this.size;
    for (let y = Math.max(0, Math.floor(p.y - r)); y <= Math.min(h - 1, p.y + r); y++)
      for (let x = Math.max(0, Math.floor(p.x - r)); x <= Math.min(w - 1, p.x + r); x++)
        if ((x - p.x) ** 2 + (y - p.y) ** 2 <= r * r) this.px[y * w + x] = v;
  }
  stroke(points: readonly Point[], radius: number, erase: boolean): void {
    for (const p of points) this.disc(p, radius, erase ? 0 : 1);
  }
  clear(): void {
    this.px.fill(0);
  }
  invert(): void {
    for (let i = 0; i < this.px.length; i++) this.px[i] = this.px[i] ? 0 : 1;
  }
  painted(): boolean {
    return this.px.some((v) => v !== 0);
  }
  count(): number {
    return this.px.reduce((n, v) => n + v, 0);
  }
  async save(): Promise<Blob> {
    return new Blob([this.px.slice()], { type: "application/x-grid" });
  }
  async load(blob: Blob): Promise<void> {
    this.px = new Uint8Array(await blob.arrayBuffer());
  }
  async export(size: Size, feather: number): Promise<Blob> {
    return new Blob([JSON.stringify({ ...size, feather, painted: this.count() })], { type: "image/png" });
  }
}
