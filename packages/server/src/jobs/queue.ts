// The embedded job queue (SQLite backend of JobQueue): takes validated requests, writes their
// generations to the store, hands the oldest queued one to an idle local engine, turns engine
// messages into status changes and events, encodes results, and cancels. Every state change is
// written before it is announced.
import { randomInt, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import path from "node:path";
import type { Engines, JobListener } from "../engine/supervisor.js";
import { ApiError, type GenerationErrorCode, generationError } from "../errors.js";
import type { Metrics } from "../metrics.js";
import { type EditParams, MAX_SEED } from "../schema/flux-kontext-dev.js";
import type { FileStore, StoredInput } from "../storage/files.js";
import {
  type HistoryFilter,
  type JobQueue,
  type ListFilter,
  lastStepDone,
  type QueuedGeneration,
  type QueueEvents,
  resultUrlPath,
} from "./job-queue.js";
import {
  completedData,
  type EngineInput,
  engineInput,
  InputUnavailable,
  jobMessage,
  progressData,
  queuedData,
  startedData,
  storeResult,
} from "./run.js";
import type { InsertMeta, JobStore } from "./store.js";
import { FINAL, type Generation, type StoredEvent, type StoredParams } from "./types.js";

export interface QueueOptions {
  maxQueue: number;
  /** Attempts a generation gets when its engine dies under it (the first run plus one retry). */
  maxAttempts?: number;
  log?: (level: "info" | "warn" | "error", msg: string) => void;
}

/** Fills in what a request leaves to the server (a random seed) and keeps what a run needs. */
export function newGenerations(params: EditParams, input: StoredInput, count: number) {
  const base = params.seed ?? randomInt(0, 2 ** 47); // randomInt's range is below 2^48
  const stored: StoredParams = {
    model: params.model,
    prompt: params.prompt,
    aspect_ratio: params.aspect_ratio,
    num_inference_steps: params.num_inference_steps,
    guidance: params.guidance,
    output_format: params.output_format,
    output_quality: params.output_quality,
    disable_safety_checker: params.disable_safety_checker,
    fast: params.fast,
    response_format: params.response_format,
  };
  if (/^https?:\/\//i.test(params.input_image)) stored.input_image = params.input_image;
  if (params.webhook) {
    stored.webhook = params.webhook;
    stored.webhook_events_filter = params.webhook_events_filter;
  }
  return Array.from({ length: count }, (_, i) => ({
    id: randomUUID(),
    model: params.model,
    params: stored,
    input: { hash: input.hash, path: input.path, width: input.width, height: input.height },
    seed: (base + i) % (MAX_SEED + 1),
  }));
}

export class SqliteJobQueue extends EventEmitter<QueueEvents> implements JobQueue {
  private readonly previews = new Map<string, Buffer>();
  private readonly lastStepAt = new Map<string, number>();
  private readonly running = new Set<string>();
  private stopping = false;
  /** Results being encoded and stored: the store must stay open until they are written. */
  private readonly completing = new Set<Promise<void>>();
  /** Generations claimed for an idle engine whose input is being decoded, and those runs' starts. */
  private preparing = 0;
  private readonly launching = new Set<Promise<void>>();
  private readonly maxAttempts: number;

  constructor(
    private readonly store: JobStore,
    private readonly files: FileStore,
    private readonly engines: Engines,
    private readonly metrics: Metrics,
    private readonly options: QueueOptions,
  ) {
    super();
    this.setMaxListeners(0); // one listener per open event stream
    this.maxAttempts = options.maxAttempts ?? 2;
    files.referencesFrom({ inputsInUse: async (hashes) => store.inputsInUse(hashes) });
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
  }

  /** Resolves once no result is being encoded or stored, nor a run started (call before closing the store). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.completing, ...this.launching]);
  }

  /** False once stop() was called (shutting down). */
  accepting(): boolean {
    return !this.stopping;
  }

  /** Generations the engines are running now. */
  runningCount(): number {
    return this.running.size;
  }

  /** 503 while shutting down, 429 when `count` more would not fit the queue; stores nothing. */
  async admit(count: number): Promise<void> {
    this.checkAdmission(count);
  }

  private checkAdmission(count: number): void {
    if (this.stopping) throw new ApiError("shutting_down");
    const queued = this.store.count("queued");
    if (queued + count > this.options.maxQueue) {
      const retryAfter = this.retryAfterSeconds(queued);
      throw new ApiError(
        "queue_full",
        { queued, limit: this.options.maxQueue, retryAfter },
        { headers: { "retry-after": String(retryAfter) } },
      );
    }
  }

  /** Writes `count` generations (queued) and returns them; 429 when the queue is full. */
  async submit(
    params: EditParams,
    input: StoredInput,
    count: number,
    meta: InsertMeta = {},
  ): Promise<Generation[]> {
    this.checkAdmission(count); // again, with the insert (synchronous): it may have filled meanwhile
    const saved = this.store.insertMany(
      newGenerations(params, input, count),
      Date.now(),
      (g) => queuedData(g, this.store.queuePosition(g)),
      meta,
    );
    // Announced after the commit, so a listener always finds the rows it is told about.
    for (const g of saved) this.announce(this.store.eventsOf(g.id).at(-1));
    queueMicrotask(() => this.dispatch());
    return saved;
  }

  private retryAfterSeconds(queued: number): number {
    const engines = Math.max(1, this.engines.status().length);
    return Math.min(3600, Math.max(1, Math.ceil((queued / engines) * 2)));
  }

  private withPosition(g: Generation): QueuedGeneration {
    return { ...g, queuePosition: g.status === "queued" ? this.store.queuePosition(g) : null };
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
    if (!this.store.get(id)) return null;
    this.store.update(id, { starred: starred ? 1 : 0 });
    return this.get(id);
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

  /** Resolves when the generation reaches a final status. */
  waitFor(id: string): Promise<Generation> {
    return new Promise((resolve) => {
      const check = () => {
        const g = this.store.get(id);
        if (!g || FINAL.includes(g.status)) {
          this.off("event", onEvent);
          resolve(g as Generation);
          return true;
        }
        return false;
      };
      const onEvent = (e: StoredEvent) => {
        if (e.generationId === id && e.event === "media_generation_completed") check();
      };
      this.on("event", onEvent);
      check();
    });
  }

  /** Cancels a queued generation at once; asks the engine to stop a processing one. */
  async cancel(id: string): Promise<Generation> {
    const g = this.store.get(id);
    if (!g) throw new ApiError("generation_not_found", { id });
    if (FINAL.includes(g.status)) throw new ApiError("generation_finished", { id, status: g.status });
    if (lastStepDone(g)) throw new ApiError("generation_finishing", { id, steps: g.totalSteps ?? 0 });
    if (g.status === "queued") {
      this.finish(g, "cancelled", failure(generationError("cancelled")));
    } else {
      this.store.update(id, { cancel_requested: 1 });
      this.engines.cancel(id);
    }
    return this.store.get(id) as Generation;
  }

  /**
   * Hands queued generations to idle engines, oldest first: one is claimed only while an engine is
   * idle that no claimed one is waiting for, then its input is decoded and it is run (launch).
   */
  dispatch(): void {
    while (!this.stopping) {
      const idle = this.engines.status().filter((s) => s.state === "idle").length;
      if (idle <= this.preparing) return;
      const g = this.store.nextQueued();
      if (!g) return;
      const now = Date.now();
      this.store.update(g.id, { status: "processing", attempts: g.attempts + 1, started_at: now, step: 0 });
      this.running.add(g.id);
      this.preparing++;
      const launch: Promise<void> = this.launch(g)
        .catch((err: Error) =>
          this.options.log?.("error", `generation ${g.id}: starting it failed: ${err.message}`),
        )
        .finally(() => this.launching.delete(launch));
      this.launching.add(launch);
    }
  }

  /** Decodes a claimed generation's input into its tmp dir and hands it to an idle engine. */
  private async launch(g: Generation): Promise<void> {
    let input: EngineInput;
    try {
      input = await engineInput(this.files, g);
    } catch (err) {
      this.preparing--;
      const e = err as Error;
      void this.files.removeTmp(g.id);
      this.finish(
        g,
        "failed",
        failure(
          err instanceof InputUnavailable
            ? { code: err.code, message: err.message }
            : generationError("input_missing", { reason: e.message }),
        ),
      );
      this.dispatch(); // its engine is still idle
      return;
    }
    this.preparing--;
    const requeue = () => {
      this.running.delete(g.id);
      this.store.update(g.id, { status: "queued", attempts: g.attempts, started_at: null, step: 0 });
      void this.files.removeTmp(g.id);
    };
    if (this.stopping) return requeue(); // runs after the restart, not counted
    if (this.store.get(g.id)?.cancelRequested) {
      void this.files.removeTmp(g.id);
      this.finish(g, "cancelled", failure(generationError("cancelled")));
      this.dispatch();
      return;
    }
    const accepted = this.engines.run(
      jobMessage(g, input, path.resolve(this.files.tmpDirFor(g.id))),
      this.listenerFor(g),
    );
    if (!accepted) requeue(); // its engine went away meanwhile; "available" dispatches again
  }

  private listenerFor(g: Generation): JobListener {
    const id = g.id;
    return {
      started: (m) => {
        this.store.update(id, {
          width: m.width,
          height: m.height,
          total_steps: g.params.num_inference_steps,
        });
        this.lastStepAt.set(id, Date.now());
        this.append(id, "media_generation_started", startedData(g, m));
      },
      progress: (m) => {
        const now = Date.now();
        const last = this.lastStepAt.get(id);
        if (last !== undefined) this.metrics.stepSeconds.observe((now - last) / 1000);
        this.lastStepAt.set(id, now);
        this.store.update(id, { step: m.step, total_steps: m.total_steps });
        if (m.preview) this.previews.set(id, Buffer.from(m.preview.data, "base64"));
        this.append(id, "media_generation_progress", progressData(id, m));
      },
      result: (m) => {
        const done = this.complete(id, m.images[0], m.timings_ms);
        this.completing.add(done);
        void done.finally(() => this.completing.delete(done));
      },
      error: (m) => this.failed(id, m.code, m.message),
    };
  }

  private async complete(
    id: string,
    image: { path: string; width: number; height: number } | undefined,
    engineTimings: Record<string, number>,
  ): Promise<void> {
    const g = this.store.get(id);
    if (!g) return;
    if (g.cancelRequested) {
      // The cancel was answered 200 before the last step ended: it is honoured, the image dropped.
      await this.files.removeTmp(id);
      this.finish(g, "cancelled", failure(generationError("cancelled")));
      return;
    }
    try {
      if (!image) throw new Error("the engine returned no image");
      const r = await storeResult(this.files, g, image, engineTimings);
      await this.files.removeTmp(id);
      this.metrics.inferenceSeconds.observe((engineTimings.total ?? 0) / 1000);
      this.finish(g, "succeeded", {
        result_file: r.resultFile,
        width: r.width,
        height: r.height,
        timings: JSON.stringify(r.timings),
        result_hash: r.resultHash, // links edit chains
      });
    } catch (err) {
      await this.files.removeTmp(id);
      const full = err instanceof ApiError && err.code === "storage_full";
      this.finish(
        g,
        "failed",
        failure(
          full
            ? generationError("storage_full", { reason: err.message })
            : generationError("encode_failed", { reason: String(err) }),
        ),
      );
    }
  }

  private failed(id: string, code: GenerationErrorCode, message: string): void {
    const g = this.store.get(id);
    if (!g) return;
    void this.files.removeTmp(id);
    if (code === "cancelled" || (g.cancelRequested && code === "engine_crashed")) {
      this.finish(g, "cancelled", failure(generationError("cancelled")));
      return;
    }
    if (code === "shutting_down" || (this.stopping && code === "engine_crashed")) {
      // The gateway is stopping: the generation runs again after the restart, not counted.
      this.running.delete(id);
      this.store.update(id, {
        status: "queued",
        started_at: null,
        step: 0,
        attempts: Math.max(0, g.attempts - 1),
      });
      return;
    }
    if (code === "engine_crashed" && g.attempts < this.maxAttempts) {
      this.running.delete(id);
      this.options.log?.("warn", `generation ${id}: ${message}; retrying (attempt ${g.attempts + 1})`);
      this.store.update(id, { status: "queued", started_at: null, step: 0 });
      this.append(id, "media_generation_queued", queuedData(g, this.store.queuePosition(g), true));
      return; // the engine's restart emits "available", which dispatches it again
    }
    this.finish(g, "failed", failure(generationError(code, { reason: message, retries: g.attempts - 1 })));
  }

  private finish(
    g: Generation,
    status: "succeeded" | "failed" | "cancelled",
    fields: Parameters<JobStore["update"]>[1],
  ): void {
    const now = Date.now();
    this.store.update(g.id, { ...fields, status, completed_at: now, cancel_requested: 0 });
    this.running.delete(g.id);
    this.previews.delete(g.id);
    this.lastStepAt.delete(g.id);
    this.metrics.jobs.inc({ status });
    this.metrics.jobSeconds.observe((now - g.enqueuedAt) / 1000, { status });
    if (status === "failed") this.metrics.errors.inc({ code: String(fields.error_code ?? "unknown") });
    const done = this.store.get(g.id) as Generation;
    this.append(g.id, "media_generation_completed", completedData(done, resultUrlPath(done)));
  }

  private append(id: string, event: StoredEvent["event"], data: Record<string, unknown>): void {
    this.announce(this.store.appendEvent(id, event, data));
  }

  private announce(e: StoredEvent | undefined): void {
    if (e) this.emit("event", e);
  }

  async depth(): Promise<{ queued: number; processing: number }> {
    return { queued: this.store.count("queued"), processing: this.store.count("processing") };
  }
}

/** A generation's error_code and error_message as the store's columns. */
function failure(e: { code: GenerationErrorCode; message: string }) {
  return { error_code: e.code, error_message: e.message };
}
