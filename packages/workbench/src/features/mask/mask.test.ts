// The mask controller on a grid double of the canvas: a 12 MP input paints on a working canvas of
// at most 2048 px a side and exports at the input's size; nothing is sent until something is
// painted; erase, invert, clear; kept across a reload; another picture starts afresh.
import { describe, expect, it } from "vitest";
import { fakeTimers } from "../session/fakes.js";
import { memoryBlobs } from "../workspace/blobs.js";
import { GridSurface } from "./fakes.js";
import { MASK_KEY, Mask, workSize } from "./mask.js";

function setup(blobs = memoryBlobs()) {
  const surfaces: GridSurface[] = [];
  const timers = fakeTimers();
  const mask = new Mask({
    surface: (size) => {
      const s = new GridSurface(size);
      surfaces.push(s);
      return s;
    },
    blobs,
    timers,
    dataUri: async (b) => `data:${b.type};base64,${Buffer.from(await b.arrayBuffer()).toString("base64")}`,
  });
  return { mask, blobs, timers, surfaces };
}

const flush = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};
const PHOTO = { width: 4000, height: 3000 }; // 12 MP

describe("the mask", () => {
  it("paints a 12 MP photo on a display-size canvas and exports at the photo's size", async () => {
    expect(workSize(PHOTO)).toEqual({ width: 2048, height: 1536 });
    expect(workSize({ width: 640, height: 480 })).toEqual({ width: 640, height: 480 });
    const { mask } = setup();
    mask.setInput(PHOTO);
    expect(await mask.png()).toBeNull(); // nothing painted: nothing sent
    mask.setBrush(10);
    mask.setFeather(12);
    mask.stroke([{ x: 100, y: 100 }], 2); // 10 screen px at 2 working px each
    expect(mask.get().painted).toBe(true);
    const sent = JSON.parse(await ((await mask.png()) as Blob).text());
    expect(sent).toMatchObject({ width: 4000, height: 3000, feather: 12 });
    expect(sent.painted).toBeGreaterThan(1200); // a disc of radius 20 working px
  });

  it("erases, inverts and clears; erasing everything leaves nothing to send", async () => {
    const { mask, surfaces } = setup();
    mask.setInput({ width: 100, height: 100 });
    mask.setBrush(5);
    mask.stroke([
      { x: 20, y: 50 },
      { x: 30, y: 50 },
    ]);
    const painted = (surfaces[0] as GridSurface).count();
    mask.invert();
    expect((surfaces[0] as GridSurface).count()).toBe(100 * 100 - painted);
    mask.invert();
    mask.setErase(true);
    mask.setBrush(20);
    mask.stroke([
      { x: 20, y: 50 },
      { x: 30, y: 50 },
    ]);
    expect(mask.get().painted).toBe(false);
    expect(await mask.dataUri()).toBeNull();
    mask.invert(); // all of it may change
    expect(mask.get().painted).toBe(true);
    mask.clear();
    expect(mask.get().painted).toBe(false);
  });

  it("keeps what was painted across a reload, for a picture of the same shape", async () => {
    const blobs = memoryBlobs();
    const first = setup(blobs);
    first.mask.setInput(PHOTO);
    first.mask.setFeather(20);
    first.mask.stroke([{ x: 500, y: 500 }]);
    first.timers.advance(500); // saved after a pause
    await flush();
    expect(blobs.map.has(MASK_KEY)).toBe(true);
    const meta = JSON.parse(JSON.stringify(first.mask.meta()));
    expect(meta).toEqual({ width: 2048, height: 1536, feather: 20, painted: true });

    const again = setup(blobs);
    await again.mask.restore(meta, PHOTO);
    expect(again.mask.get()).toMatchObject({ painted: true, feather: 20, input: PHOTO });
    expect((again.surfaces[0] as GridSurface).count()).toBe((first.surfaces[0] as GridSurface).count());

    const other = setup(blobs);
    await other.mask.restore(meta, { width: 1000, height: 1000 }); // another picture
    expect(other.mask.get().painted).toBe(false);
  });

  it("starts afresh for another picture and forgets the saved pixels", async () => {
    const { mask, blobs, timers } = setup();
    mask.setInput(PHOTO);
    mask.stroke([{ x: 5, y: 5 }]);
    timers.advance(500);
    await flush();
    expect(blobs.map.has(MASK_KEY)).toBe(true);
    mask.setInput(PHOTO); // the same picture (the server's copy after a run): kept
    expect(mask.get().painted).toBe(true);
    mask.reset();
    expect(mask.get()).toMatchObject({ painted: false, size: null });
    await flush();
    expect(blobs.map.has(MASK_KEY)).toBe(false);
  });
});
