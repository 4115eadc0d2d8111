// The decoded-input cache: a second run on the same input skips the decode, a deleted input
// leaves no decoded copy, and the cache stays within its size without removing a file in use.
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { DecodedInputs } from "../src/storage/decoded-inputs.js";

const HASH = (c: string) => c.repeat(64);

function cache(limit: number) {
  const dir = mkdtempSync(path.join(tmpdir(), "kontext-decoded-"));
  const decodes: string[] = [];
  const c = new DecodedInputs(dir, limit);
  const get = (hash: string, bytes = 6) =>
    c.get(hash, async (write) => {
      decodes.push(hash);
      await write(Buffer.alloc(bytes, hash.charCodeAt(0)));
      return { width: bytes / 3, height: 1 };
    });
  return { c, get, decodes };
}

describe("inputs decoded for the engines", () => {
  it("decodes an input once for runs in a row, and hands each run the whole file", async () => {
    const { get, decodes } = cache(1024);
    const first = await get(HASH("a"));
    first.release();
    const second = await get(HASH("a"));
    expect(decodes).toEqual([HASH("a")]); // the second run did not decode again
    expect(second.path).toBe(first.path);
    expect(readFileSync(second.path)).toEqual(Buffer.alloc(6, "a".charCodeAt(0)));
    expect([second.width, second.height]).toEqual([2, 1]);
    second.release();
  });

  it("removes the decoded copy of a deleted input once the run reading it ends", async () => {
    const { c, get, decodes } = cache(1024);
    const held = await get(HASH("b"));
    c.drop(HASH("b"));
    expect(existsSync(held.path)).toBe(true); // the engine may still be reading it
    held.release();
    await expect.poll(() => existsSync(held.path)).toBe(false);
    (await get(HASH("b"))).release();
    expect(decodes).toEqual([HASH("b"), HASH("b")]); // decoded again: nothing stale was served
  });

  it("keeps within its size, least recently used out first, never a file a run holds", async () => {
    const { c, get } = cache(12); // two 6-byte inputs
    const a = await get(HASH("a"));
    const b = await get(HASH("b"));
    b.release();
    const d = await get(HASH("d")); // over the limit: b is out (a is held, d is new)
    await expect.poll(() => existsSync(b.path)).toBe(false);
    expect(existsSync(a.path)).toBe(true);
    expect(c.heldBytes).toBe(12);
    a.release();
    d.release();
    const big = await get(HASH("e"), 30); // bigger than the whole cache: used, then removed
    expect(existsSync(big.path)).toBe(true);
    big.release();
    await expect.poll(() => existsSync(big.path)).toBe(false);
    expect(c.heldBytes).toBeLessThanOrEqual(12);
  });
});
