// Inputs decoded for the engines (raw RGB, what the engine reads), kept on this machine by the
// stored input's hash, so runs on the same input decode it once: a workbench iterating on one
// photo, the variations of a queue submission, a retry. A 12 MP JPEG takes ~140 ms to decode on
// this machine's CPU, a 512² PNG ~3 ms (docs/performance.md, "Decoded inputs").
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";

/** Bytes of decoded inputs kept at most: seven 12 MP photos (36 MB each) or ~340 1 MP ones. */
export const DECODED_INPUTS_BYTES = 256 * 1024 * 1024;

/** One run's hold on a decoded input: the file stays until `release()`. */
export interface DecodedInput {
  path: string;
  width: number;
  height: number;
  release(): void;
}

interface Entry {
  path: string;
  width: number;
  height: number;
  bytes: number;
  users: number;
  /** Removed from the cache (its input was deleted, or evicted) while a run still reads it. */
  dropped: boolean;
}

let seq = 0;

export class DecodedInputs {
  /** Least recently used first. */
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  /** `dir`: on this machine only (under the file store's tmp/, emptied at start). */
  constructor(
    private readonly dir: string,
    private readonly limitBytes = DECODED_INPUTS_BYTES,
  ) {}

  /**
   * The input `hash` decoded, held for one run: from the cache, or `decode` (which hands its
   * pixels to `write`) fills it; no run sees the file before it is whole. An
   * input bigger than the whole cache is still written, and removed once its runs release it.
   */
  async get(
    hash: string,
    decode: (write: (rgb: Buffer) => Promise<void>) => Promise<{ width: number; height: number }>,
  ): Promise<DecodedInput> {
    const hit = this.entries.get(hash);
    if (hit) {
      this.entries.delete(hash); // to the most recent end
      this.entries.set(hash, hit);
      return this.hold(hit);
    }
    // A name of its own per decode: an evicted file's removal can never hit a newer copy.
    const file = path.join(this.dir, `${hash}-${process.pid}-${++seq}.rgb`);
    let bytes = 0;
    const size = await decode(async (rgb) => {
      try {
        await writeFile(file, rgb); // no fsync: tmp/ does not outlive the process's runs
      } catch (err) {
        await rm(file, { force: true });
        throw err;
      }
      bytes = rgb.length;
    });
    // Two runs decoded the same input at once: the first to finish is kept.
    const raced = this.entries.get(hash);
    if (raced) {
      void rm(file, { force: true });
      return this.hold(raced);
    }
    const entry: Entry = { path: file, ...size, bytes, users: 0, dropped: false };
    this.entries.set(hash, entry);
    this.bytes += bytes;
    const held = this.hold(entry);
    this.evict();
    return held;
  }

  /** Forgets `hash` (its stored input was deleted): its file goes now, or when its last run ends. */
  drop(hash: string): void {
    const e = this.entries.get(hash);
    if (e) this.remove(hash, e);
  }

  /** Bytes the cache holds now (runs' files included). */
  get heldBytes(): number {
    return this.bytes;
  }

  private hold(e: Entry): DecodedInput {
    e.users++;
    let released = false;
    return {
      path: e.path,
      width: e.width,
      height: e.height,
      release: () => {
        if (released) return;
        released = true;
        e.users--;
        if (e.dropped && e.users === 0) void rm(e.path, { force: true });
        else if (e.users === 0) this.evict();
      },
    };
  }

  /** Oldest unused entries out until the cache fits its limit. */
  private evict(): void {
    for (const [hash, e] of this.entries) {
      if (this.bytes <= this.limitBytes) return;
      if (e.users === 0) this.remove(hash, e);
    }
  }

  private remove(hash: string, e: Entry): void {
    this.entries.delete(hash);
    this.bytes -= e.bytes;
    e.dropped = true;
    if (e.users === 0) void rm(e.path, { force: true });
  }
}
