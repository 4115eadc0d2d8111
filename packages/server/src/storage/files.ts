// The file store: every path under KONTEXT_DATA_DIR is made here, and only here.
//   inputs/ab/<sha256>.rgb   decoded input images (raw RGB), content-addressed, with <sha256>.json
//   results/<id>-<random>.<ext>  encoded outputs, served at /results/<name>
//   tmp/<id>/                the engine's raw outputs for one job, removed once encoded
// Every file is written to a temporary name, flushed and renamed: a reader (or a restart after
// kill -9) sees the whole file or none. usageBytes() tracks what inputs/ and results/ hold.
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { open, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { ApiError } from "../errors.js";

export interface StoredInput {
  hash: string;
  path: string;
  width: number;
  height: number;
}

const SAFE_NAME = /^[A-Za-z0-9_-]{1,128}\.(webp|jpg|png)$/;
const PART = ".part";

export class FileStore {
  readonly root: string;
  /** The engines' raw outputs: always on this machine, even when `root` is shared (KONTEXT_SHARED_DIR). */
  private readonly tmpRoot: string;
  private usage = 0;
  constructor(root: string, opts: { tmpDir?: string } = {}) {
    this.root = path.resolve(root);
    this.tmpRoot = path.resolve(opts.tmpDir ?? path.join(this.root, "tmp"));
    for (const d of ["inputs", "results"]) mkdirSync(path.join(this.root, d), { recursive: true });
    mkdirSync(this.tmpRoot, { recursive: true });
    // Whatever a crash left half-written is removed; the rest is counted.
    for (const d of ["inputs", "results"]) this.usage += scan(path.join(this.root, d));
  }

  /** Bytes held by input and result files. */
  usageBytes(): number {
    return this.usage;
  }

  /** Empties tmp/ (the engines' raw outputs); only at start, when no job is running. */
  clearTmp(): void {
    rmSync(this.tmpRoot, { recursive: true, force: true });
    mkdirSync(this.tmpRoot, { recursive: true });
  }

  private async write(file: string, data: Buffer): Promise<void> {
    const before = await sizeOf(file);
    try {
      await this.writeFileAtomic(file, data);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOSPC" || code === "EDQUOT") {
        throw new ApiError("storage_full", {
          reason: `the disk holding ${path.dirname(file)} has no space left`,
        });
      }
      throw err;
    }
    this.usage += data.length - before;
  }

  /** The one place bytes reach the disk (tests replace it to simulate a full disk). */
  protected writeFileAtomic(file: string, data: Buffer): Promise<void> {
    return writeAtomic(file, data);
  }

  private async remove(file: string): Promise<void> {
    const size = await sizeOf(file);
    await rm(file, { force: true });
    this.usage -= size;
  }

  /** Deletes a stored input (both its files). */
  async removeInput(hash: string): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(hash)) return;
    const p = this.inputPaths(hash);
    await this.remove(p.meta); // the meta file first: without it the input counts as missing
    await this.remove(p.raw);
  }

  get databasePath(): string {
    return path.join(this.root, "kontext.db");
  }

  private inputPaths(hash: string): { raw: string; meta: string } {
    const dir = path.join(this.root, "inputs", hash.slice(0, 2));
    return { raw: path.join(dir, `${hash}.rgb`), meta: path.join(dir, `${hash}.json`) };
  }

  /** The decoded input stored under this hash, if any (the meta file is written last). */
  async findInput(hash: string): Promise<StoredInput | null> {
    const p = this.inputPaths(hash);
    try {
      const meta = JSON.parse(await readFile(p.meta, "utf8")) as { width: number; height: number };
      const s = await stat(p.raw);
      if (s.size !== meta.width * meta.height * 3) return null;
      return { hash, path: p.raw, width: meta.width, height: meta.height };
    } catch {
      return null;
    }
  }

  async putInput(hash: string, rgb: Buffer, width: number, height: number): Promise<StoredInput> {
    const p = this.inputPaths(hash);
    mkdirSync(path.dirname(p.raw), { recursive: true });
    await this.write(p.raw, rgb);
    await this.write(p.meta, Buffer.from(JSON.stringify({ width, height })));
    return { hash, path: p.raw, width, height };
  }

  /** The raw RGB of a stored input, or null when it is gone. */
  async readInput(input: StoredInput): Promise<Buffer | null> {
    try {
      return await readFile(this.inputPaths(input.hash).raw);
    } catch {
      return null;
    }
  }

  /** The directory the engine writes one job's raw outputs into (the engine creates it). */
  tmpDirFor(id: string): string {
    return path.join(this.tmpRoot, id);
  }

  async removeTmp(id: string): Promise<void> {
    await rm(this.tmpDirFor(id), { recursive: true, force: true });
  }

  /** A result's file name: the id plus 128 random bits, so its URL cannot be guessed from the id. */
  resultName(id: string, ext: string): string {
    return `${id}-${randomBytes(16).toString("base64url")}.${ext}`;
  }

  async putResult(name: string, data: Buffer): Promise<void> {
    await this.write(this.resultPath(name), data);
  }

  /** The path of a result file, or null when the name could not be one of ours. */
  resultPath(name: string): string {
    if (!SAFE_NAME.test(name)) throw new Error(`not a result name: ${name}`);
    return path.join(this.root, "results", name);
  }

  isResultName(name: string): boolean {
    return SAFE_NAME.test(name);
  }

  async readResult(name: string): Promise<Buffer | null> {
    if (!this.isResultName(name)) return null;
    try {
      return await readFile(this.resultPath(name));
    } catch {
      return null;
    }
  }

  async removeResult(name: string): Promise<void> {
    if (this.isResultName(name)) await this.remove(this.resultPath(name));
  }
}

let partSeq = 0;

async function writeAtomic(file: string, data: Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.${++partSeq}${PART}`;
  try {
    const fh = await open(tmp, "w");
    try {
      await fh.writeFile(data);
      await fh.sync(); // on disk before the rename makes it visible
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }); // never leave a half-written file behind
    throw err;
  }
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

/** Total size of the files under `dir`, deleting leftover temporary (.part) files. */
function scan(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const file = path.join(e.parentPath, e.name);
    if (e.name.endsWith(PART)) rmSync(file, { force: true });
    else total += statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  }
  return total;
}
