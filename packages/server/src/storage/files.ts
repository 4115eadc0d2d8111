// The file store: every path under KONTEXT_DATA_DIR is made here, and only here.
//   inputs/ab/<sha256>.<jpg|png|gif|webp>  input images as sent (their original bytes),
//                            named by the sha256 of those bytes, with <sha256>.json: {width,
//                            height (as the engine sees it: oriented, capped), format, bytes}
//   inputs/ab/<sha256>.rgb   an input stored by an earlier version (decoded raw RGB; its .json
//                            has no format): still read, never written
//   results/<id>-<random>.<ext>  encoded outputs, served at /results/<name>
//   tmp/<id>/                one job's files on this machine: its mask decoded for the engine
//                            (mask_image.grey, at its input's size) and the engine's raw
//                            outputs; removed when the job ends
//   tmp/decoded/<sha256>-…   input images and references decoded for the engines (raw RGB),
//                            kept by hash for the next run on the same image (decoded-inputs.ts)
// Every file is written to a temporary name, flushed and renamed: a reader (or a restart after
// kill -9) sees the whole file or none. usageBytes() tracks what inputs/ and results/ hold.
// An input is pinned while a submission in this process is between storing it and writing its
// generations; removing it (retention, a failed submission, orphan collection) skips pinned
// inputs and inputs a generation refers to (InputReferences: the queue's job store).
// With an object store (KONTEXT_S3_BUCKET) inputs and results live in the bucket under the same
// names; inputs/ on the local disk is then a bounded cache of the files engines read.
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { ApiError } from "../errors.js";
import type { InputFormat } from "../images/codec.js";
import { DecodedInputs } from "./decoded-inputs.js";
import type { ObjectStore } from "./objects.js";

/** How an input is stored: its original bytes, or (`raw`, earlier versions) decoded RGB. */
export type StoredFormat = InputFormat | "raw";

export interface StoredInput {
  hash: string;
  /** The stored file: the original image (raw RGB for a `raw` input). */
  path: string;
  /** The size the engine sees (oriented, capped at the engine's largest side). */
  width: number;
  height: number;
  format: StoredFormat;
  /** The stored file's size. */
  bytes: number;
}

/** What says which stored inputs generations still refer to: the job store of the queue in use. */
export interface InputReferences {
  /** The hashes among `hashes` that a stored generation (with its files) refers to. */
  inputsInUse(hashes: readonly string[]): Promise<ReadonlySet<string>>;
}

interface InputMeta {
  width: number;
  height: number;
  /** Absent in an input stored by an earlier version: raw RGB. */
  format?: InputFormat;
  bytes?: number;
}

const EXT: Record<StoredFormat, string> = { jpeg: "jpg", png: "png", gif: "gif", webp: "webp", raw: "rgb" };
const INPUT_FILE = /^([0-9a-f]{64})\.(json|jpg|png|gif|webp|rgb)$/;

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

/** Results kept in memory for their b64_json reader at most (the oldest is dropped beyond it). */
const JUST_STORED_KEPT = 8;

export class FileStore {
  readonly root: string;
  /** The engines' raw outputs: always on this machine, even when `root` is shared (KONTEXT_SHARED_DIR). */
  private readonly tmpRoot: string;
  private usage = 0;
  private readonly objects: ObjectStore | null;
  /** Inputs submissions in this process hold (hash → count), and removals under way. */
  private readonly pins = new Map<string, number>();
  /** Results stored for a b64_json answer in this process, until it reads them (putResult). */
  private readonly justStored = new Map<string, Buffer>();
  private readonly removing = new Map<string, Promise<void>>();
  private references: InputReferences | null = null;
  /** With an object store: the inputs with a local copy, least recently used first, and their bytes. */
  private readonly cached = new Map<string, number>();
  private cachedBytes = 0;
  private readonly inputCacheBytes: number;
  /** Input images decoded for the engines, by hash (on this machine, under tmp/). */
  readonly decoded: DecodedInputs;

  constructor(root: string, opts: FileStoreOptions = {}) {
    this.root = path.resolve(root);
    this.inputCacheBytes = opts.inputCacheBytes ?? INPUT_CACHE_BYTES;
    this.tmpRoot = path.resolve(opts.tmpDir ?? path.join(this.root, "tmp"));
    this.objects = opts.objects ?? null;
    // The local copies beside an object store start empty, so the cache's account is exact.
    if (this.objects) rmSync(path.join(this.root, "inputs"), { recursive: true, force: true });
    for (const d of ["inputs", "results"]) mkdirSync(path.join(this.root, d), { recursive: true });
    mkdirSync(path.join(this.tmpRoot, "decoded"), { recursive: true });
    this.decoded = new DecodedInputs(path.join(this.tmpRoot, "decoded"));
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

  /**
   * Counts inputs/ and results/ again from the disk. On a shared path (KONTEXT_SHARED_DIR) other
   * processes write and delete there too (workers store results, other gateways inputs), so the
   * disk cap is checked against a fresh count: retention recounts before each sweep. Half-written
   * files are another process's writes in progress: skipped, never removed.
   */
  recount(): void {
    if (this.objects) return;
    let total = 0;
    for (const d of ["inputs", "results"]) total += sizeUnder(path.join(this.root, d));
    this.usage = total;
  }

  /** Empties tmp/ (the engines' raw outputs); only at start, when no job is running. */
  clearTmp(): void {
    rmSync(this.tmpRoot, { recursive: true, force: true });
    mkdirSync(path.join(this.tmpRoot, "decoded"), { recursive: true });
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

  /** Where generations' references to inputs are read (the queue registers its job store). */
  referencesFrom(references: InputReferences): void {
    this.references = references;
  }

  /**
   * Pins an input for a submission between storing it (or finding it stored) and writing its
   * generations: until the returned function is called nothing here removes it. Waits for a
   * removal of the same input that is already under way, so the caller then sees it gone.
   */
  async pinInput(hash: string): Promise<() => void> {
    for (let r = this.removing.get(hash); r; r = this.removing.get(hash)) await r.catch(() => undefined);
    this.pins.set(hash, (this.pins.get(hash) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.pins.get(hash) ?? 1) - 1;
      if (n > 0) this.pins.set(hash, n);
      else this.pins.delete(hash);
    };
  }

  /**
   * Removes a stored input unless it is pinned or in use: `inUse` says (default: the registered
   * references; with none registered nothing is removed). True when it was removed.
   */
  async removeInputIfUnused(hash: string, inUse?: () => boolean | Promise<boolean>): Promise<boolean> {
    const busy = () => this.pins.has(hash) || this.removing.has(hash);
    if (busy()) return false;
    const used = inUse
      ? await inUse()
      : this.references
        ? (await this.references.inputsInUse([hash])).has(hash)
        : true;
    if (used || busy()) return false;
    const removal = this.removeInput(hash).finally(() => this.removing.delete(hash));
    this.removing.set(hash, removal);
    await removal;
    return true;
  }

  /**
   * Removes the inputs on this disk that no generation refers to and that nothing has written or
   * used for `graceMs` (another process sharing the directory may be about to refer to a fresh
   * one), skipping pinned ones. Not with an object store (its local copies are a bounded cache;
   * a lifecycle rule expires the bucket). Returns how many were removed.
   */
  async collectOrphanInputs(graceMs: number): Promise<number> {
    if (this.objects || !this.references) return 0;
    const now = Date.now();
    const stale = [...(await this.localInputs())]
      .filter(([hash, changed]) => now - changed > graceMs && !this.pins.has(hash))
      .map(([hash]) => hash);
    let removed = 0;
    for (let i = 0; i < stale.length; i += 500) {
      const batch = stale.slice(i, i + 500);
      const used = await this.references.inputsInUse(batch);
      for (const hash of batch) {
        if (used.has(hash)) continue;
        // Found and used again by an ingest (in another process) since it was listed: kept.
        if (Date.now() - (await this.inputChangedAt(hash)) <= graceMs) continue;
        if (await this.removeInputIfUnused(hash, () => false)) removed++;
      }
    }
    return removed;
  }

  /** Marks a stored input as just used (an ingest found it), so orphan collection leaves it be. */
  async touchInput(hash: string): Promise<void> {
    if (this.objects) return;
    const now = new Date();
    await utimes(this.inputPaths(hash, "raw").meta, now, now).catch(() => undefined);
  }

  /** Every input on this disk (by hash) and when its newest file last changed (ms). */
  private async localInputs(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const top = path.join(this.root, "inputs");
    for (const dir of await readdir(top).catch(() => [] as string[])) {
      for (const name of await readdir(path.join(top, dir)).catch(() => [] as string[])) {
        const hash = INPUT_FILE.exec(name)?.[1];
        if (!hash) continue;
        const s = await stat(path.join(top, dir, name)).catch(() => null);
        if (s) out.set(hash, Math.max(out.get(hash) ?? 0, s.mtimeMs));
      }
    }
    return out;
  }

  private async inputChangedAt(hash: string): Promise<number> {
    const dir = path.dirname(this.inputPaths(hash, "raw").meta);
    let latest = Number.NEGATIVE_INFINITY;
    for (const ext of ["json", ...Object.values(EXT)]) {
      const s = await stat(path.join(dir, `${hash}.${ext}`)).catch(() => null);
      if (s) latest = Math.max(latest, s.mtimeMs);
    }
    return latest;
  }

  /** Deletes a stored input (its image and meta files, here and in the object store). */
  async removeInput(hash: string): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(hash)) return;
    let meta = await this.readMeta(hash);
    const objectMeta = !meta && this.objects ? await this.objects.get(inputKeys(hash, "raw").meta) : null;
    meta ??= objectMeta && parseMeta(objectMeta);
    // The format says which image file it is; without a meta file, whichever is there.
    const formats: StoredFormat[] = meta ? [meta.format ?? "raw"] : (Object.keys(EXT) as StoredFormat[]);
    await this.remove(this.inputPaths(hash, "raw").meta); // first: without it the input counts as missing
    for (const f of formats) await this.remove(this.inputPaths(hash, f).data);
    this.forget(hash);
    this.decoded.drop(hash); // a deleted input leaves no decoded copy behind
    if (this.objects) {
      await this.objects.remove(inputKeys(hash, "raw").meta);
      for (const f of formats) await this.objects.remove(inputKeys(hash, f).data);
    }
  }

  get databasePath(): string {
    return path.join(this.root, "kontext.db");
  }

  private inputPaths(hash: string, format: StoredFormat): { data: string; meta: string } {
    const k = inputKeys(hash, format);
    return { data: path.join(this.root, k.data), meta: path.join(this.root, k.meta) };
  }

  private async readMeta(hash: string): Promise<InputMeta | null> {
    try {
      return parseMeta(await readFile(this.inputPaths(hash, "raw").meta));
    } catch {
      return null;
    }
  }

  /**
   * The input stored under this hash, if any (the meta file is written last), with a local path
   * that can be read: from an object store it is copied to the local cache first.
   */
  async findInput(hash: string): Promise<StoredInput | null> {
    const local = await this.findLocalInput(hash);
    if (!this.objects) return local;
    if (local) {
      this.remember(hash, local.bytes);
      // Other machines read the bucket, where a lifecycle rule may have expired the object while
      // this copy stayed in use: put it back.
      if (!(await this.objects.exists(inputKeys(hash, local.format).meta))) {
        await this.uploadInput(hash, await readFile(local.path), metaOf(local));
      }
      return local;
    }
    const metaBytes = await this.objects.get(inputKeys(hash, "raw").meta);
    const meta = metaBytes && parseMeta(metaBytes);
    if (!meta) return null;
    const data = await this.objects.get(inputKeys(hash, meta.format ?? "raw").data);
    if (!data || !sizeMatches(meta, data.length)) return null;
    return this.writeLocalInput(hash, data, meta);
  }

  private async findLocalInput(hash: string): Promise<StoredInput | null> {
    const meta = await this.readMeta(hash);
    if (!meta) return null;
    const format = meta.format ?? "raw";
    const p = this.inputPaths(hash, format);
    const s = await stat(p.data).catch(() => null);
    if (!s || !sizeMatches(meta, s.size)) return null;
    return { hash, path: p.data, width: meta.width, height: meta.height, format, bytes: s.size };
  }

  /** Stores an input's original bytes under `hash` (the sha256 of `bytes`) with its meta file. */
  async putInput(
    hash: string,
    bytes: Buffer,
    info: { width: number; height: number; format: InputFormat },
  ): Promise<StoredInput> {
    const meta: InputMeta = {
      width: info.width,
      height: info.height,
      format: info.format,
      bytes: bytes.length,
    };
    if (this.objects) await this.uploadInput(hash, bytes, meta);
    return this.writeLocalInput(hash, bytes, meta);
  }

  private async uploadInput(hash: string, bytes: Buffer, meta: InputMeta): Promise<void> {
    const k = inputKeys(hash, meta.format ?? "raw");
    await this.objects?.put(k.data, bytes);
    await this.objects?.put(k.meta, Buffer.from(JSON.stringify(meta))); // last: see findInput
  }

  private async writeLocalInput(hash: string, bytes: Buffer, meta: InputMeta): Promise<StoredInput> {
    const format = meta.format ?? "raw";
    const p = this.inputPaths(hash, format);
    mkdirSync(path.dirname(p.data), { recursive: true });
    await this.write(p.data, bytes);
    await this.write(p.meta, Buffer.from(JSON.stringify(meta)));
    this.remember(hash, bytes.length);
    await this.pruneCache(hash);
    return { hash, path: p.data, width: meta.width, height: meta.height, format, bytes: bytes.length };
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

  /** Removes the least recently used local copies beyond the cache's size; never `keep` or a pinned one. */
  private async pruneCache(keep: string): Promise<void> {
    for (const hash of this.cached.keys()) {
      if (this.cachedBytes <= this.inputCacheBytes) break;
      if (hash === keep || this.pins.has(hash)) continue;
      const meta = await this.readMeta(hash);
      const p = this.inputPaths(hash, meta?.format ?? "raw");
      this.forget(hash);
      await this.remove(p.meta);
      await this.remove(p.data);
    }
  }

  /** A stored input's bytes (the original image; raw RGB for a `raw` one), or null when it is gone. */
  async readInput(input: { hash: string }): Promise<{ bytes: Buffer; format: StoredFormat } | null> {
    const local = await this.findLocalInput(input.hash);
    if (local) {
      const bytes = await readFile(local.path).catch(() => null);
      if (bytes) return { bytes, format: local.format };
    }
    if (!this.objects) return null;
    const metaBytes = await this.objects.get(inputKeys(input.hash, "raw").meta);
    const meta = metaBytes && parseMeta(metaBytes);
    if (!meta) return null;
    const bytes = await this.objects.get(inputKeys(input.hash, meta.format ?? "raw").data);
    return bytes && sizeMatches(meta, bytes.length) ? { bytes, format: meta.format ?? "raw" } : null;
  }

  /** Where one job's decoded input (or its file `name`) is written for the engine (in its tmp dir, removed with it). */
  engineInputPath(id: string, name = "input.rgb"): string {
    if (!/^[a-z0-9_]+\.(rgb|grey)$/.test(name)) throw new Error(`not an engine input name: ${name}`);
    return path.join(this.tmpDirFor(id), name);
  }

  /**
   * Writes a job's decoded input for the engine (tmp files are not counted in usageBytes): its
   * input image as input.rgb, or another image of the job under `name` (input_image_2.rgb,
   * mask_image.grey).
   */
  async writeEngineInput(id: string, pixels: Buffer, name = "input.rgb"): Promise<string> {
    const file = path.resolve(this.engineInputPath(id, name));
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, pixels);
    return file;
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

  /** Stores a result; `readSoon`: its bytes stay in memory for the one read that follows (b64_json). */
  async putResult(name: string, data: Buffer, readSoon = false): Promise<void> {
    if (this.objects) await this.objects.put(resultKey(this.checkedName(name)), data);
    else await this.write(this.resultPath(name), data);
    if (!readSoon) return;
    this.justStored.set(name, data);
    for (const old of this.justStored.keys()) {
      if (this.justStored.size <= JUST_STORED_KEPT) break;
      this.justStored.delete(old); // its reader went away: it reads the store, if it comes back
    }
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
    const recent = this.justStored.get(name);
    if (recent) {
      this.justStored.delete(name); // read once: later reads (downloads, thumbnails) go to the store
      return recent;
    }
    if (this.objects) return this.objects.get(resultKey(name));
    try {
      return await readFile(this.resultPath(name));
    } catch {
      return null;
    }
  }

  async removeResult(name: string): Promise<void> {
    if (!this.isResultName(name)) return;
    this.justStored.delete(name);
    if (this.objects) await this.objects.remove(resultKey(name));
    else await this.remove(this.resultPath(name));
  }
}

/** An input's two files, relative to the root on a disk and as object names in a bucket. */
function inputKeys(hash: string, format: StoredFormat): { data: string; meta: string } {
  const dir = `inputs/${hash.slice(0, 2)}`;
  return { data: `${dir}/${hash}.${EXT[format]}`, meta: `${dir}/${hash}.json` };
}

function parseMeta(bytes: Buffer): InputMeta | null {
  try {
    const m = JSON.parse(bytes.toString("utf8")) as InputMeta;
    if (!Number.isInteger(m.width) || !Number.isInteger(m.height)) return null;
    if (m.format !== undefined && (m.format === ("raw" as string) || !(m.format in EXT))) return null;
    return m;
  } catch {
    return null;
  }
}

const metaOf = (i: StoredInput): InputMeta =>
  i.format === "raw"
    ? { width: i.width, height: i.height }
    : { width: i.width, height: i.height, format: i.format, bytes: i.bytes };

/** Whether a stored file has the size its meta says (raw: width × height × 3). */
function sizeMatches(meta: InputMeta, size: number): boolean {
  if (!meta.format) return size === meta.width * meta.height * 3;
  return meta.bytes === undefined || size === meta.bytes;
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
function sizeUnder(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && !e.name.endsWith(PART))
      total += statSync(path.join(e.parentPath, e.name), { throwIfNoEntry: false })?.size ?? 0;
  }
  return total;
}

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
