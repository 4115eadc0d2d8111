// Retention and the disk cap. A finished generation's input and result files are deleted once
// they are older than KONTEXT_RESULT_TTL_HOURS, and sooner, oldest first, while the files take
// more than KONTEXT_STORAGE_CAP_MB; its row stays as metadata (expired_at set). An input shared
// by another generation that still needs it is kept. When nothing can be freed, submissions get
// 507 until generations finish. Input files no generation refers to (what a crash between storing
// an input and writing its generations, or an earlier version's refused submissions, left) are
// removed at start and on every sweep, once nothing has touched them for ORPHAN_GRACE_MS.
import { ApiError } from "../errors.js";
import { IDEMPOTENCY_TTL_MS } from "../jobs/idempotency.js";
import type { Generation } from "../jobs/types.js";
import type { FileStore } from "./files.js";

/**
 * What retention needs of the generations' records, on either backend: the SQLite SqliteRecords and
 * the RedisRecords both have it (the queue backend's records are the ones swept).
 */
export interface RetentionRecords {
  /** Finished generations still holding files, finished before `before`, oldest first. */
  withFilesOldestFirst(before: number, limit: number): Generation[] | Promise<Generation[]>;
  /** Whether a generation other than `exceptId` still refers to the input `hash`. */
  inputInUse(hash: string, exceptId: string): boolean | Promise<boolean>;
  markExpired(id: string, at: number): void | Promise<void>;
  forgetIdempotencyBefore(before: number): unknown;
}

export interface RetentionOptions {
  ttlHours: number;
  capBytes: number;
  /** How long an unreferenced input is left alone (default ORPHAN_GRACE_MS). */
  orphanGraceMs?: number;
  log?: (level: "info" | "warn" | "error", msg: string) => void;
}

/**
 * An unreferenced input younger than this is not an orphan yet: a submission in another process
 * sharing the directory may have just stored (or found) it and be about to write its generations.
 */
export const ORPHAN_GRACE_MS = 10 * 60_000;

const MB = 1024 * 1024;
/** Eviction frees down to this share of the cap, so it does not run on every submission. */
const LOW_WATER = 0.9;

export class Retention {
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;

  constructor(
    private readonly store: RetentionRecords,
    private readonly files: FileStore,
    private readonly options: RetentionOptions,
  ) {}

  start(intervalMs = 60_000): this {
    void this.sweep();
    this.timer = setInterval(() => void this.sweep(), intervalMs);
    this.timer.unref();
    return this;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.sweeping;
  }

  /** Expires what is past the retention time, then the oldest while over the cap. */
  sweep(): Promise<void> {
    this.sweeping ??= this.run().finally(() => {
      this.sweeping = null;
    });
    return this.sweeping;
  }

  /** Called before a submission stores anything: frees room, or answers 507. */
  async ensureRoom(): Promise<void> {
    if (this.files.usageBytes() < this.options.capBytes) return;
    await this.sweep(); // recounts first: on a shared path others may have written or freed files
    const used = this.files.usageBytes();
    if (used < this.options.capBytes) return;
    throw new ApiError(
      "storage_full",
      {
        reason: `input and result files take ${(used / MB).toFixed(1)} MB and the cap is ${(this.options.capBytes / MB).toFixed(1)} MB (KONTEXT_STORAGE_CAP_MB); what is left belongs to queued or processing generations, so retry when some finish`,
      },
      { headers: { "retry-after": "30" } },
    );
  }

  private async run(): Promise<void> {
    this.files.recount(); // what other processes sharing the path wrote (workers' results) counts too
    const now = Date.now();
    let expired = 0;
    for (;;) {
      const batch = await this.store.withFilesOldestFirst(now - this.options.ttlHours * 3_600_000, 100);
      for (const g of batch) await this.expire(g);
      expired += batch.length;
      if (batch.length < 100) break;
    }
    const orphans = await this.files.collectOrphanInputs(this.options.orphanGraceMs ?? ORPHAN_GRACE_MS);
    const target = this.options.capBytes * LOW_WATER;
    let evicted = 0;
    while (this.files.usageBytes() > target) {
      const batch = await this.store.withFilesOldestFirst(now + 1, 20);
      if (batch.length === 0) break; // the rest belongs to generations still running or queued
      for (const g of batch) {
        await this.expire(g);
        evicted++;
        if (this.files.usageBytes() <= target) break;
      }
    }
    await this.store.forgetIdempotencyBefore(now - IDEMPOTENCY_TTL_MS);
    if (expired + evicted > 0) {
      this.options.log?.(
        "info",
        `retention: deleted the files of ${expired} expired and ${evicted} oldest generation(s) (disk cap)`,
      );
    }
    if (orphans > 0)
      this.options.log?.("info", `retention: deleted ${orphans} input(s) no generation refers to`);
  }

  private async expire(g: Generation): Promise<void> {
    await this.store.markExpired(g.id, Date.now()); // first: from here on it no longer holds its input
    await this.removeFiles(g, (hash) => this.store.inputInUse(hash, g.id));
  }

  /**
   * Deletes a generation's result file and its inputs (input_image, references, mask), each
   * only when no other generation refers to it (`inUse`; by default the queue's job store says)
   * and no submission is about to (pinned). Call once the generation no longer holds its files:
   * expired, or deleted (DELETE /api/history/:id, whatever the queue backend).
   */
  async removeFiles(g: Generation, inUse?: (hash: string) => boolean | Promise<boolean>): Promise<void> {
    if (g.resultFile) await this.files.removeResult(g.resultFile);
    if (g.maskFile) await this.files.removeResult(g.maskFile); // output_resolution input's change mask
    const hashes = new Set([...(g.input ? [g.input.hash] : []), ...(g.references ?? []).map((r) => r.hash)]); // text-to-image has no input
    if (g.mask) hashes.add(g.mask.hash);
    for (const hash of hashes) await this.files.removeInputIfUnused(hash, inUse && (() => inUse(hash)));
  }
}
