// The file store: every path under KONTEXT_DATA_DIR is made here, and only here.
//   inputs/ab/<sha256>.rgb   decoded input images (raw RGB), content-addressed, with <sha256>.json
//   results/<id>-<random>.<ext>  encoded outputs, served at /results/<name>
//   tmp/<id>/                the engine's raw outputs for one job, removed once encoded
// Every file is written to a temporary name, flushed and renamed: a reader (or a restart after
// kill -9) sees the whole file or none. usageBytes() tracks what inputs/ and results/ hold.
// With an object store (KONTEXT_S3_BUCKET) inputs and results live in the bucket under the same
// names; inputs/ on the local disk is then a bounded cache of the files engines read.
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { open, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { ApiError } from "../errors.js";
import type { ObjectStore } from "./objects.js";

export interface StoredInput {
  hash: string;
  path: string;
  width: number;
  height: number;
}

const SAFE_NAME = /^[A-Za-z0-9_-]{1,128}\.(webp|jpg|png)$/;
const PART = ".part";
/** Local copies of inputs kept beside an object store: enough for the edits in flight and recent chains. */
const INPUT_CACHE_BYTES = 1024 * 1024 * 1024;

export interface FileStoreOptions {
  /** The engines' raw outputs (default ROOT/tmp). */
  tmpDir?: string;
  /** Inputs and results live here instead of under ROOT (ROOT/inputs keeps local copies). */
  objects?: ObjectStore;
  /** The local copies' size limit beside an object store (default 1 GiB). */
  inputCacheBytes?: number;
}

export class FileStore {
  readonly root: string;
  /** The engines' raw outputs: always on this machine, even when `root` is shared (KONTEXT_SHARED_DIR). */
  private readonly tmpRoot: string;
  private usage = 0;
  private readonly objects: ObjectStore | null;
  /** With an object store: the inputs with a local copy, least recently used first, and their bytes. */
  private readonly cached = new Map<string, number>();
  private cachedBytes = 0;
  private readonly inputCacheBytes: number;

  constructor(root: string, opts: FileStoreOptions = {}) {
    this.root = path.resolve(root);
    this.inputCacheBytes = opts.inputCacheBytes ?? INPUT_CACHE_BYTES;
    this.tmpRoot = path.resolve(opts.tmpDir ?? path.join(this.root, "tmp"));
    this.objects = opts.objects ?? null;
    // The local copies beside an object store start empty, so the cache's account is exact.
    if (this.objects) rmSync(path.join(this.root, "inputs"), { recursive: true, force: true });
    for (const d of ["inputs", "results"]) mkdirSync(path.join(this.root, d), { recursive: true });
    mkdirSync(this.tmpRoot, { recursive: true });
    // Whatever a crash left half-written is removed; the rest is counted.
    for (const d of ["inputs", "results"]) this.usage += scan(path.join(this.root, d));
  }

  /** Where inputs and results live, for messages: a directory or a bucket. */
  get location(): string {
    return this.objects?.describe() ?? this.root;
  }

  /**
   * Bytes held by input and result files on this disk (what the disk cap limits). A bucket is not
   * counted: its size is the store's to limit (lifecycle rules, quotas).
   */
  usageBytes(): number {
    return this.objects ? 0 : this.usage;
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
    this.forget(hash);
    if (this.objects) {
      const k = inputKeys(hash);
      await this.objects.remove(k.meta);
      await this.objects.remove(k.raw);
    }
  }

  get databasePath(): string {
    return path.join(this.root, "kontext.db");
  }

  private inputPaths(hash: string): { raw: string; meta: string } {
    const k = inputKeys(hash);
    return { raw: path.join(this.root, k.raw), meta: path.join(this.root, k.meta) };
  }

  /**
   * The decoded input stored under this hash, if any (the meta file is written last), with a
   * local path an engine can read: from an object store it is copied to the local cache first.
   */
  async findInput(hash: string): Promise<StoredInput | null> {
    const local = await this.findLocalInput(hash);
    if (!this.objects) return local;
    const k = inputKeys(hash);
    if (local) {
      this.remember(hash, local.width * local.height * 3);
      // Other machines read the bucket, where a lifecycle rule may have expired the object while
      // this copy stayed in use: put it back.
      if (!(await this.objects.exists(k.meta))) {
        await this.uploadInput(hash, await readFile(local.path), local.width, local.height);
      }
      return local;
    }
    const metaBytes = await this.objects.get(k.meta);
    const rgb = metaBytes && (await this.objects.get(k.raw));
    if (!metaBytes || !rgb) return null;
    const meta = JSON.parse(metaBytes.toString("utf8")) as { width: number; height: number };
    if (rgb.length !== meta.width * meta.height * 3) return null;
    return this.writeLocalInput(hash, rgb, meta.width, meta.height);
  }

  private async findLocalInput(hash: string): Promise<StoredInput | null> {
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
    if (this.objects) await this.uploadInput(hash, rgb, width, height);
    return this.writeLocalInput(hash, rgb, width, height);
  }

  private async uploadInput(hash: string, rgb: Buffer, width: number, height: number): Promise<void> {
    const k = inputKeys(hash);
    await this.objects?.put(k.raw, rgb);
    await this.objects?.put(k.meta, Buffer.from(JSON.stringify({ width, height }))); // last: see findInput
  }

  private async writeLocalInput(
    hash: string,
    rgb: Buffer,
    width: number,
    height: number,
  ): Promise<StoredInput> {
    const p = this.inputPaths(hash);
    mkdirSync(path.dirname(p.raw), { recursive: true });
    await this.write(p.raw, rgb);
    await this.write(p.meta, Buffer.from(JSON.stringify({ width, height })));
    this.remember(hash, rgb.length);
    await this.pruneCache(hash);
    return { hash, path: p.raw, width, height };
  }

  /** Marks an input's local copy as the most recently used (only beside an object store). */
  private remember(hash: string, bytes: number): void {
    if (!this.objects) return;
    this.forget(hash);
    this.cached.set(hash, bytes);
    this.cachedBytes += bytes;
  }

  private forget(hash: string): void {
    this.cachedBytes -= this.cached.get(hash) ?? 0;
    this.cached.delete(hash);
  }

  /** Removes the least recently used local copies beyond the cache's size; never `keep`. */
  private async pruneCache(keep: string): Promise<void> {
    for (const hash of this.cached.keys()) {
      if (this.cachedBytes <= this.inputCacheBytes) break;
      if (hash === keep) continue;
      const p = this.inputPaths(hash);
      this.forget(hash);
      await this.remove(p.meta);
      await this.remove(p.raw);
    }
  }

  /** The raw RGB of a stored input, or null when it is gone. */
  async readInput(input: StoredInput): Promise<Buffer | null> {
    try {
      return await readFile(this.inputPaths(input.hash).raw);
    } catch {
      return this.objects ? this.objects.get(inputKeys(input.hash).raw) : null;
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
    if (this.objects) await this.objects.put(resultKey(this.checkedName(name)), data);
    else await this.write(this.resultPath(name), data);
  }

  /** The local path of a result file (without an object store). */
  resultPath(name: string): string {
    return path.join(this.root, "results", this.checkedName(name));
  }

  private checkedName(name: string): string {
    if (!SAFE_NAME.test(name)) throw new Error(`not a result name: ${name}`);
    return name;
  }

  isResultName(name: string): boolean {
    return SAFE_NAME.test(name);
  }

  async readResult(name: string): Promise<Buffer | null> {
    if (!this.isResultName(name)) return null;
    if (this.objects) return this.objects.get(resultKey(name));
    try {
      return await readFile(this.resultPath(name));
    } catch {
      return null;
    }
  }

  async removeResult(name: string): Promise<void> {
    if (!this.isResultName(name)) return;
    if (this.objects) await this.objects.remove(resultKey(name));
    else await this.remove(this.resultPath(name));
  }
}

/** An input's two files, relative to the root on a disk and as object names in a bucket. */
function inputKeys(hash: string): { raw: string; meta: string } {
  const dir = `inputs/${hash.slice(0, 2)}`;
  return { raw: `${dir}/${hash}.rgb`, meta: `${dir}/${hash}.json` };
}

const resultKey = (name: string) => `results/${name}`;

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
