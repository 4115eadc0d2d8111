// The embedded job queue (SQLite backend of JobQueue): writes submissions' generations to the
// SQLite store, claims the oldest queued one for an idle local engine and hands it to the runner
// (runner.ts), which runs it and writes every change through this backend's records. Every state
// change is written before it is announced.
import { EventEmitter } from "node:events";
import type { Engines } from "../engine/supervisor.js";
import { ApiError } from "../errors.js";
import type { Metrics } from "../metrics.js";
import type { RequestParams } from "../schema/flux-kontext-dev.js";
import type { FileStore, StoredInput } from "../storage/files.js";
import {
  type HistoryFilter,
  type JobQueue,
  type ListFilter,
  type QueuedGeneration,
  type QueueEvents,
  resultUrlPath,
} from "./job-queue.js";
import { checkAdmission, claimFields, newGenerations, onCancel } from "./lifecycle.js";
import { queuedData } from "./run.js";
import { finish, type RunEnd, Runner, type RunRecords } from "./runner.js";
import type { InsertMeta, SqliteRecords } from "./sqlite-records.js";
import { type EventName, FINAL, type Generation, type Patch, type StoredEvent } from "./types.js";

/** How often a processing generation's row is written with its step (the events carry every step). */
const PROGRESS_WRITE_MS = 1_000;

export { newGenerations };

export interface QueueOptions {
  maxQueue: number;
  /** Attempts a generation gets when its engine dies under it (the first run plus one retry). */
  maxAttempts?: number;
  log?: (level: "info" | "warn" | "error", msg: string) => void;
}

export class SqliteJobQueue extends EventEmitter<QueueEvents> implements JobQueue {
  private readonly previews = new Map<string, Buffer>();
  /** Processing generations' latest step, and when the row was last written with it. */
  private readonly progress = new Map<
    string,
    { step: number; totalSteps: number | null; writtenAt: number }
  >();
  /** Generations claimed and not yet ended (decoding, running, storing). */
  private readonly running = new Set<string>();
  private stopping = false;
  /** Claimed runs that have not reached an engine yet: each holds one idle engine. */
  private preparing = 0;
  /** Every run, and whether it sits on an engine now (the engines end those when they stop). */
  private readonly runs = new Map<Promise<void>, { onEngine: boolean }>();
  private readonly runner: Runner;
  private readonly records: RunRecords;

  constructor(
    private readonly store: SqliteRecords,
    private readonly files: FileStore,
    private readonly engines: Engines,
    private readonly metrics: Metrics,
    private readonly options: QueueOptions,
  ) {
    super();
    this.setMaxListeners(0); // one listener per open event stream
    files.referencesFrom({ inputsInUse: async (hashes) => store.inputsInUse(hashes) });
    this.records = {
      get: async (id) => this.read(id),
      apply: async (id, expect, fields, event) => {
        const r = store.apply(id, expect, this.persisted(id, fields, event?.name), event);
        if (r.event) this.emit("event", r.event); // announced after the commit
        return r;
      },
      setPreview: async (id, jpeg) => void this.previews.set(id, jpeg),
      positionIfQueued: async (g) => store.queuePosition(g),
    };
    this.runner = new Runner({
      records: this.records,
      files,
      engines,
      metrics,
      policy: () => ({ maxAttempts: options.maxAttempts ?? 2, stopping: this.stopping }),
      log: options.log,
    });
    engines.on("available", () => this.dispatch());
    engines.on("restart", () => metrics.engineRestarts.inc());
  }

  /** Requeues what a crash left processing (and clears its raw outputs), starts dispatching. */
  async start(): Promise<void> {
    const n = this.store.requeueInterrupted();
    if (n > 0) this.options.log?.("info", `requeued ${n} generation(s) interrupted by a restart`);
    this.files.clearTmp();
    this.dispatch();
  }

  /** Stops dispatching; generations the engines are running are requeued as they end. */
  stop(): void {
    this.stopping = true;
    this.runner.stop();
  }

  /**
   * Resolves once no run is being prepared for an engine or storing its result (call after the
   * engines stopped, before closing the store): what still sits on an engine writes nothing more.
   */
  async settled(): Promise<void> {
    for (;;) {
      const pending = [...this.runs].filter(([, s]) => !s.onEngine).map(([p]) => p);
      if (pending.length === 0) return;
      await Promise.allSettled(pending);
    }
  }

  accepting(): boolean {
    return !this.stopping;
  }

  /** Generations claimed and not ended yet. */
  runningCount(): number {
    return this.running.size;
  }

  async admit(count: number): Promise<void> {
    this.checkAdmission(count);
  }

  private checkAdmission(count: number): void {
    checkAdmission({
      stopping: this.stopping,
      queued: this.store.count("queued"),
      count,
      maxQueue: this.options.maxQueue,
      engines: this.engines.status().length,
    });
  }

  /** Writes `count` generations (queued) and returns them; 429 when the queue is full. */
  async submit(
    params: RequestParams,
    input: StoredInput | null,
    count: number,
    meta: InsertMeta = {},
  ): Promise<Generation[]> {
    this.checkAdmission(count); // again, with the insert (synchronous): it may have filled meanwhile
    const saved = this.store.insertMany(
      newGenerations(params, input, count, meta.inputs),
      Date.now(),
      (g) => queuedData(g, this.store.queuePosition(g)),
      meta,
    );
    // Announced after the commit, so a listener always finds the rows it is told about.
    for (const { event } of saved) this.emit("event", event);
    queueMicrotask(() => this.dispatch());
    return saved.map((s) => s.generation);
  }

  /**
   * What a progress event writes to the row: its step at most once a second (and the last one).
   * The event itself is always stored (streams replay every step); readers see the latest step
   * from memory (`read`), so the row costs one write per second instead of one per step.
   */
  private persisted(id: string, fields: Patch, event: EventName | undefined): Patch {
    if (event !== "media_generation_progress" || fields.step === undefined) {
      if (fields.status !== undefined && fields.status !== "processing") this.progress.delete(id);
      return fields;
    }
    const now = Date.now();
    const last = this.progress.get(id);
    const final = fields.totalSteps != null && fields.step >= fields.totalSteps;
    this.progress.set(id, {
      step: fields.step,
      totalSteps: fields.totalSteps ?? null,
      writtenAt: last?.writtenAt ?? 0,
    });
    if (!final && last && now - last.writtenAt < PROGRESS_WRITE_MS) return {};
    this.progress.set(id, { step: fields.step, totalSteps: fields.totalSteps ?? null, writtenAt: now });
    return fields;
  }

  /** The stored generation with its latest step (kept in memory between the row's writes). */
  private read(id: string): Generation | null {
    const g = this.store.get(id);
    return g && this.current(g);
  }

  /** `g` with the latest step of its run, when it is processing. */
  private current(g: Generation): Generation {
    const p = g.status === "processing" ? this.progress.get(g.id) : undefined;
    return p ? { ...g, step: p.step, totalSteps: p.totalSteps ?? g.totalSteps } : g;
  }

  private withPosition(g: Generation): QueuedGeneration {
    return { ...this.current(g), queuePosition: g.status === "queued" ? this.store.queuePosition(g) : null };
  }

  async get(id: string): Promise<QueuedGeneration | null> {
    const g = this.store.get(id);
    return g ? this.withPosition(g) : null;
  }

  async list(filter: ListFilter): Promise<QueuedGeneration[]> {
    return this.store.list(filter).map((g) => this.withPosition(g));
  }

  async history(filter: HistoryFilter): Promise<QueuedGeneration[]> {
    return this.store.history(filter).map((g) => this.withPosition(g));
  }

  async queuePosition(id: string): Promise<number | null> {
    return this.store.queuePositionOf(id);
  }

  async setStarred(id: string, starred: boolean): Promise<QueuedGeneration | null> {
    const g = this.store.get(id);
    if (!g) return null;
    this.store.apply(id, [], { starred });
    return this.withPosition({ ...g, starred });
  }

  async remove(id: string): Promise<Generation> {
    const r = this.store.removeFinal(id);
    if (!r) throw new ApiError("generation_not_found", { id });
    if (!r.removed) throw new ApiError("generation_active", { id, status: r.generation.status });
    return r.generation;
  }

  async countActiveOf(owner: string | null): Promise<number> {
    return this.store.countActiveOf(owner);
  }

  async idempotent(owner: string | null, key: string) {
    return this.store.idempotent(owner, key);
  }

  async eventsOf(id: string, afterId = 0): Promise<StoredEvent[]> {
    return this.store.eventsOf(id, afterId);
  }

  async completedEventsSince(afterId: number): Promise<StoredEvent[]> {
    return this.store.completedEventsSince(afterId);
  }

  async latestPreview(id: string): Promise<Buffer | null> {
    return this.previews.get(id) ?? null;
  }

  resultUrlPath(g: Generation): string | null {
    return resultUrlPath(g);
  }

  /** Resolves when the generation reaches a final status (with the generation as written). */
  waitFor(id: string): Promise<Generation> {
    return new Promise((resolve) => {
      const g = this.store.get(id);
      if (!g || FINAL.includes(g.status)) return resolve(g as Generation);
      const onEvent = (e: StoredEvent) => {
        if (e.generationId !== id || e.event !== "media_generation_completed") return;
        this.off("event", onEvent);
        resolve(this.store.get(id) as Generation);
      };
      this.on("event", onEvent);
    });
  }

  /** Cancels a queued generation at once; asks the engine to stop a processing one. */
  async cancel(id: string): Promise<Generation> {
    const g = this.read(id); // with its latest step: a cancel after the last one is refused
    const d = onCancel(g, id);
    if (!g) throw new ApiError("generation_not_found", { id }); // onCancel threw already
    if (d.kind === "finish") {
      const done = await finish(this.records, this.metrics, g, d.status, d.fields, ["queued"]);
      if (done) return done;
    }
    this.store.apply(id, ["queued", "processing"], { cancelRequested: true });
    this.engines.cancel(id);
    return { ...g, cancelRequested: true };
  }

  /**
   * Hands queued generations to idle engines, oldest first: one is claimed only while an engine is
   * idle that no claimed one is waiting for, then the runner decodes its input and runs it.
   */
  dispatch(): void {
    while (!this.stopping) {
      const idle = this.engines.status().filter((s) => s.state === "idle").length;
      if (idle <= this.preparing) return;
      const g = this.store.nextQueued();
      if (!g) return;
      const claim = claimFields(g, Date.now());
      this.store.apply(g.id, ["queued"], claim);
      this.running.add(g.id);
      this.preparing++;
      const state = { onEngine: false };
      let waiting = true;
      const run: Promise<void> = this.runner
        .run({ ...g, ...claim } as Generation, (on) => {
          if (waiting) this.preparing--;
          waiting = false;
          state.onEngine = on;
        })
        .then((end) => this.ended(end))
        .catch((err: Error) =>
          this.options.log?.("error", `generation ${g.id}: its run failed: ${err.message}`),
        )
        .finally(() => {
          this.running.delete(g.id);
          this.runs.delete(run);
        });
      this.runs.set(run, state);
    }
  }

  private ended(end: RunEnd): void {
    this.running.delete(end.generation.id);
    this.previews.delete(end.generation.id);
    this.progress.delete(end.generation.id);
    this.dispatch(); // an engine is free again (a retry waits for its engine's restart)
  }

  async depth(): Promise<{ queued: number; processing: number }> {
    return { queued: this.store.count("queued"), processing: this.store.count("processing") };
  }
}
