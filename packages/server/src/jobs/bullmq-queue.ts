// The BullMQ backend of JobQueue (KONTEXT_REDIS_URL): what a gateway does. Generations and events
// live in Redis (redis-store.ts); each submission adds one BullMQ job per generation, whose data
// is the generation id alone, and a worker (worker.ts) on some GPU machine runs it. Every event
// any process writes reaches this gateway over Redis pub/sub, so streams follow a generation
// whichever gateway took it.
import { EventEmitter } from "node:events";
import { Queue } from "bullmq";
import { ApiError } from "../errors.js";
import type { Metrics } from "../metrics.js";
import type { Redis } from "../redis/connection.js";
import type { RequestParams } from "../schema/flux-kontext-dev.js";
import type { FileStore, StoredInput } from "../storage/files.js";
import {
  type HistoryFilter,
  type InsertMeta,
  type JobQueue,
  type ListFilter,
  type QueuedGeneration,
  type QueueEvents,
  resultUrlPath,
} from "./job-queue.js";
import { checkAdmission, newGenerations, onCancel } from "./lifecycle.js";
import { EVENTS_CHANNEL, type RedisRecords } from "./redis-records.js";
import { finish, type RunRecords } from "./runner.js";
import { FINAL, type Generation, type StoredEvent } from "./types.js";

/** The BullMQ queue every gateway adds to and every worker takes from. */
export const QUEUE_NAME = "kontext-generations";
export interface JobData {
  generationId: string;
}

export interface BullMqQueueOptions {
  maxQueue: number;
  log?: (level: "info" | "warn" | "error", msg: string) => void;
  /** How often queued generations are checked for a missing BullMQ job (a crash between the two writes). */
  reconcileMs?: number;
  /** Counts a queued generation cancelled here (the workers count the ones they run). */
  metrics?: Metrics;
  /** The file store this gateway stores inputs in: told which inputs Redis's generations refer to. */
  files?: FileStore;
}

export class BullMqJobQueue extends EventEmitter<QueueEvents> implements JobQueue {
  private readonly bull: Queue<JobData>;
  private stopping = false;
  private timer: NodeJS.Timeout | null = null;
  /** The records a cancel of a queued generation writes its end through (as the runner does). */
  private readonly records: RunRecords;

  /**
   * `redis` runs commands; `subscriber` is given over to pub/sub; `connection` is for BullMQ
   * (a worker-kind connection: BullMQ needs one that waits through outages).
   */
  constructor(
    private readonly store: RedisRecords,
    private readonly subscriber: Redis,
    connection: Redis,
    private readonly options: BullMqQueueOptions,
  ) {
    super();
    this.setMaxListeners(0); // one listener per open event stream
    this.bull = new Queue<JobData>(QUEUE_NAME, { connection });
    this.records = store; // RedisRecords is a runner's records as it is
    options.files?.referencesFrom({ inputsInUse: (hashes) => store.inputsInUse(hashes) });
  }

  async start(): Promise<void> {
    this.subscriber.on("message", (channel: string, message: string) => {
      if (channel !== EVENTS_CHANNEL) return;
      try {
        this.emit("event", JSON.parse(message) as StoredEvent);
      } catch (err) {
        this.options.log?.("warn", `unreadable event on ${EVENTS_CHANNEL}: ${(err as Error).message}`);
      }
    });
    // Pub/sub loses what was published while the connection was down: followers read again.
    let connected = false;
    this.subscriber.on("ready", () => {
      if (connected) this.emit("resync");
      connected = true;
    });
    await this.subscriber.subscribe(EVENTS_CHANNEL);
    connected = true;
    await this.reconcile();
    this.timer = setInterval(
      () => void this.reconcile().catch(() => undefined),
      this.options.reconcileMs ?? 30_000,
    );
    this.timer.unref();
  }

  stop(): void {
    this.stopping = true;
  }

  /** Closes the BullMQ queue (main closes the Redis connections). */
  async close(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    await this.bull.close();
  }

  accepting(): boolean {
    return !this.stopping;
  }

  /** Adds a BullMQ job for every queued generation that has none (idempotent: the job id is the generation id). */
  private async reconcile(): Promise<void> {
    const queued = await this.store.list({ statuses: ["queued"], limit: 10_000 });
    const stale = queued.filter((g) => Date.now() - g.enqueuedAt > 5_000);
    for (const g of stale) {
      if (!(await this.bull.getJob(g.id))) {
        this.options.log?.("warn", `generation ${g.id} was queued without a job; adding it`);
        await this.enqueue([g.id]);
      }
    }
  }

  private async enqueue(ids: string[]): Promise<void> {
    await this.bull.addBulk(
      ids.map((id) => ({
        name: "edit",
        data: { generationId: id },
        opts: { jobId: id, removeOnComplete: true, removeOnFail: 1000 },
      })),
    );
  }

  /** 503 while shutting down, 429 when `count` more would not fit the queue; stores nothing. */
  async admit(count: number): Promise<void> {
    if (this.stopping) throw new ApiError("shutting_down");
    const queued = await this.store.count("queued");
    if (queued + count <= this.options.maxQueue) return;
    const engines = (await this.store.workers(10_000)).reduce((n, w) => n + w.engines.length, 0);
    checkAdmission({ stopping: false, queued, count, maxQueue: this.options.maxQueue, engines });
  }

  async submit(
    params: RequestParams,
    input: StoredInput | null,
    count: number,
    meta: InsertMeta = {},
  ): Promise<Generation[]> {
    await this.admit(count); // again: the queue may have filled while the input was stored
    const gens = newGenerations(params, input, count, meta.inputs);
    const out = await this.store.insert(gens, Date.now(), meta);
    if ("existing" in out) {
      // Another gateway took the same Idempotency-Key a moment ago.
      if (out.existing.requestHash !== meta.idempotency?.requestHash)
        throw new ApiError("idempotency_conflict", { key: meta.idempotency?.key ?? "" });
      return (await Promise.all(out.existing.ids.map((id) => this.store.get(id)))).filter((g) => g !== null);
    }
    await this.enqueue(gens.map((g) => g.id));
    return (await Promise.all(gens.map((g) => this.store.get(g.id)))).filter((g) => g !== null);
  }

  idempotent(owner: string | null, key: string) {
    return this.store.idempotent(owner, key);
  }

  private async withPosition(g: Generation): Promise<QueuedGeneration> {
    return { ...g, queuePosition: await this.store.queuePosition(g) };
  }

  async get(id: string): Promise<QueuedGeneration | null> {
    const g = await this.store.get(id);
    return g ? this.withPosition(g) : null;
  }

  async list(filter: ListFilter): Promise<QueuedGeneration[]> {
    return Promise.all((await this.store.list(filter)).map((g) => this.withPosition(g)));
  }

  async history(filter: HistoryFilter): Promise<QueuedGeneration[]> {
    return Promise.all((await this.store.history(filter)).map((g) => this.withPosition(g)));
  }

  queuePosition(id: string): Promise<number | null> {
    return this.store.queuePositionOf(id);
  }

  async setStarred(id: string, starred: boolean): Promise<QueuedGeneration | null> {
    if (!(await this.store.setStarred(id, starred))) return null;
    return this.get(id);
  }

  async remove(id: string): Promise<Generation> {
    const r = await this.store.remove(id);
    if (!r) throw new ApiError("generation_not_found", { id });
    if ("active" in r) throw new ApiError("generation_active", { id, status: r.active });
    return r.removed;
  }

  countActiveOf(owner: string | null): Promise<number> {
    return this.store.countActiveOf(owner);
  }

  async depth(): Promise<{ queued: number; processing: number }> {
    const [queued, processing] = await Promise.all([
      this.store.count("queued"),
      this.store.count("processing"),
    ]);
    return { queued, processing };
  }

  eventsOf(id: string, afterId = 0): Promise<StoredEvent[]> {
    return this.store.eventsOf(id, afterId);
  }

  completedEventsSince(afterId: number): Promise<StoredEvent[]> {
    return this.store.completedEventsSince(afterId);
  }

  waitFor(id: string): Promise<Generation> {
    return new Promise((resolve, reject) => {
      let done = false;
      const check = async () => {
        try {
          const g = await this.store.get(id);
          if (done || (g && !FINAL.includes(g.status))) return;
          stopWaiting();
          resolve(g as Generation);
        } catch {
          // Redis is away: the next event, resync or tick checks again
        }
      };
      const onEvent = (e: StoredEvent) => {
        if (e.generationId === id && e.event === "media_generation_completed") void check();
      };
      const onResync = () => void check();
      // A safety net besides the events: a final event published while this gateway was cut off.
      const tick = setInterval(() => void check(), 5_000);
      const stopWaiting = () => {
        done = true;
        clearInterval(tick);
        this.off("event", onEvent);
        this.off("resync", onResync);
      };
      this.on("event", onEvent);
      this.on("resync", onResync);
      check().catch(reject);
    });
  }

  async cancel(id: string): Promise<Generation> {
    const g = await this.store.get(id);
    const d = onCancel(g, id);
    if (!g) throw new ApiError("generation_not_found", { id }); // onCancel threw already
    if (d.kind === "finish") {
      const done = await finish(this.records, this.options.metrics ?? null, g, d.status, d.fields, [
        "queued",
      ]);
      if (done) {
        await (await this.bull.getJob(id))?.remove().catch(() => undefined); // a worker may hold it: it skips it
        return done;
      }
      // A worker took it meanwhile: stop it there.
    }
    const r = await this.store.apply(id, ["queued", "processing"], { cancelRequested: true });
    if (r.applied) await this.store.publishCancel(id);
    return (await this.store.get(id)) as Generation;
  }

  latestPreview(id: string): Promise<Buffer | null> {
    return this.store.preview(id);
  }

  resultUrlPath(g: Generation): string | null {
    return resultUrlPath(g);
  }
}
