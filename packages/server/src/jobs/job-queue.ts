// The one JobQueue interface the API is written against. Two backends implement it: the embedded
// SQLite queue (sqlite-queue.ts: one process, local engines) and BullMQ on Redis (bullmq-queue.ts:
// stateless gateways, workers on GPU machines). test/queue-conformance.test.ts runs the same
// suite against both.
import type { EventEmitter } from "node:events";
import type { RequestParams } from "../schema/flux-kontext-dev.js";
import type { StoredInput } from "../storage/files.js";
import type { Generation, InsertMeta, Status, StoredEvent } from "./types.js";

export interface QueueEvents {
  /** Once per event, in id order, on every gateway. */
  event: [StoredEvent];
  /** Events may have been missed (the connection to Redis came back): followers read them again. */
  resync: [];
}

export type { InsertMeta };

export interface ListFilter {
  model?: string;
  statuses: readonly Status[];
  limit: number;
  /** Given (null included): only that owner's generations. */
  owner?: string | null;
}

export interface HistoryFilter {
  /** Prompt contains (any case). */
  query?: string;
  /** Only these statuses (all when left out). */
  statuses?: readonly Status[];
  /** Only starred (true) or only not starred (false) generations. */
  starred?: boolean;
  /** Only generations with a smaller seq (paging). */
  before?: number;
  limit: number;
  owner?: string | null;
}

/** A generation as the queue hands it out: the record plus its place in the queue. */
export type QueuedGeneration = Generation & { queuePosition: number | null };

export interface JobQueue extends EventEmitter<QueueEvents> {
  /** Requeues what a crash left behind and starts dispatching. */
  start(): Promise<void>;
  /** Stops taking submissions (503); running generations finish or run again after a restart. */
  stop(): void;
  /** False once stop() was called (shutting down). */
  accepting(): boolean;

  /**
   * Whether `count` more generations would be taken now: throws what submit would (503
   * shutting_down, 429 queue_full with Retry-After) without storing anything. submit checks again.
   */
  admit(count: number): Promise<void>;
  /**
   * Writes `count` queued generations before answering; 429 when the queue is full. `input`: the
   * edit's stored input image; null for text-to-image.
   */
  submit(
    params: RequestParams,
    input: StoredInput | null,
    count: number,
    meta?: InsertMeta,
  ): Promise<Generation[]>;
  /** The generations an idempotency key was first used for, with that request's hash. */
  idempotent(owner: string | null, key: string): Promise<{ requestHash: string; ids: string[] } | null>;

  get(id: string): Promise<QueuedGeneration | null>;
  list(filter: ListFilter): Promise<QueuedGeneration[]>;
  history(filter: HistoryFilter): Promise<QueuedGeneration[]>;
  /** Queued generations ahead of this one (0: it runs next); null when it is not queued (or unknown). */
  queuePosition(id: string): Promise<number | null>;
  /** Stars or unstars a generation; null when there is none. */
  setStarred(id: string, starred: boolean): Promise<QueuedGeneration | null>;
  /**
   * Deletes a final generation's row and events (404 generation_not_found; 409 generation_active
   * while queued or processing) and returns it: its files are the caller's to remove
   * (Retention.removeFiles), once no generation refers to them.
   */
  remove(id: string): Promise<Generation>;
  /** Queued or processing generations of this owner (null: no key). */
  countActiveOf(owner: string | null): Promise<number>;
  depth(): Promise<{ queued: number; processing: number }>;

  /** A generation's stored events after `afterId`, oldest first. */
  eventsOf(id: string, afterId?: number): Promise<StoredEvent[]>;
  /** Every generation's media_generation_completed after `afterId`. */
  completedEventsSince(afterId: number): Promise<StoredEvent[]>;

  /** Resolves when the generation reaches a final status. */
  waitFor(id: string): Promise<Generation>;
  /** Cancels a queued generation at once; asks its engine to stop a processing one. */
  cancel(id: string): Promise<Generation>;
  /** The latest progress preview (JPEG) of a processing generation. */
  latestPreview(id: string): Promise<Buffer | null>;
  /** Where the result is served, while its file is kept. */
  resultUrlPath(g: Generation): string | null;
}

export const RESULT_URL_PREFIX = "/results/";

export function resultUrlPath(g: Generation): string | null {
  return g.resultFile && g.expiredAt === null ? `${RESULT_URL_PREFIX}${g.resultFile}` : null;
}

/**
 * Whether a processing generation has run all its steps: its engine no longer looks for a cancel
 * (only the decode and the saving are left), so a cancel now is refused with 409.
 */
export function lastStepDone(g: Generation): boolean {
  return g.status === "processing" && g.totalSteps !== null && g.step >= g.totalSteps;
}
