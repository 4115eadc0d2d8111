// The file store: every path under KONTEXT_DATA_DIR is made here, and only here.
//   inputs/ab/<sha256>.rgb   decoded input images (raw RGB), content-addressed, with <sha256>.json
//   results/<id>.<ext>       encoded outputs, served at /results/<id>.<ext>
//   tmp/<id>/                the engine's raw outputs for one job, removed once encoded
import { mkdirSync } from "node:fs";
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";

export interface StoredInput {
  hash: string;
  path: string;
  width: number;
  height: number;
}

const SAFE_NAME = /^[A-Za-z0-9_-]{1,128}\.(webp|jpg|png)$/;

export class FileStore {
  readonly root: string;
  constructor(root: string) {
    this.root = path.resolve(root);
    for (const d of ["inputs", "results", "tmp"]) mkdirSync(path.join(this.root, d), { recursive: true });
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
    await writeAtomic(p.raw, rgb);
    await writeAtomic(p.meta, Buffer.from(JSON.stringify({ width, height })));
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
    return path.join(this.root, "tmp", id);
  }

  async removeTmp(id: string): Promise<void> {
    await rm(this.tmpDirFor(id), { recursive: true, force: true });
  }

  resultName(id: string, ext: string): string {
    return `${id}.${ext}`;
  }

  async putResult(name: string, data: Buffer): Promise<void> {
    await writeAtomic(this.resultPath(name), data);
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
    if (this.isResultName(name)) await rm(this.resultPath(name), { force: true });
  }
}

async function writeAtomic(file: string, data: Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.${Date.now()}.part`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}
