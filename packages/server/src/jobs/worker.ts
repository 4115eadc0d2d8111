// A worker (KONTEXT_ROLE=worker, or `all` with Redis): takes generations from the BullMQ queue,
// one per local engine, runs them, stores the result in the shared file store and writes every
// state change and event to Redis. BullMQ holds a lock on each job while it runs; when a worker
// dies its locks lapse and another worker's stalled-job check hands the job to a live worker,
// which runs it again (attempts counts the runs; after `maxAttempts` it fails with a reason).
import path from "node:path";
import { type Job, WaitingError, Worker } from "bullmq";
import type { JobListener, Supervisor } from "../engine/supervisor.js";
import { ApiError, type GenerationErrorCode, generationError } from "../errors.js";
import type { Metrics } from "../metrics.js";
import type { Redis } from "../redis/connection.js";
import type { FileStore } from "../storage/files.js";
import { type JobData, QUEUE_NAME } from "./bullmq-queue.js";
import { resultUrlPath } from "./job-queue.js";
import { CANCEL_CHANNEL, type RedisJobStore } from "./redis-store.js";
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
import { FINAL, type Generation } from "./types.js";

export interface WorkerOptions {
  /** Shown in /healthz and the logs: host and pid by default. */
  name: string;
  /** BullMQ lock duration: a dead worker's job runs elsewhere after at most twice this. */
  lockMs: number;
  /** Runs a generation gets (the first plus retries after an engine or worker died). */
  maxAttempts?: number;
  log?: (level: "info" | "warn" | "error", msg: string) => void;
}

const BEAT_MS = 2_000;
type Outcome =
  | {
      kind: "result";
      image: { path: string; width: number; height: number } | undefined;
      timings: Record<string, number>;
    }
  | { kind: "error"; code: GenerationErrorCode; message: string };

export class JobWorker {
  private worker: Worker<JobData> | null = null;
  private readonly running = new Set<string>();
  private beat: NodeJS.Timeout | null = null;
  private stopping = false;
  private readonly maxAttempts: number;
  /** Runs waiting for an idle engine: told to give up when the worker stops. */
  private readonly waiting = new Set<() => void>();

  /** `connection` is for BullMQ; `subscriber` receives cancellations. */
  constructor(
    private readonly store: RedisJobStore,
    private readonly connection: Redis,
    private readonly subscriber: Redis,
    private readonly engines: Supervisor,
    private readonly files: FileStore,
    private readonly metrics: Metrics,
    private readonly options: WorkerOptions,
  ) {
    this.maxAttempts = options.maxAttempts ?? 2;
  }

  /** Starts taking jobs once an engine is ready. */
  async start(): Promise<void> {
    this.files.clearTmp();
    this.subscriber.on("message", (channel: string, id: string) => {
      if (channel === CANCEL_CHANNEL && this.running.has(id)) this.engines.cancel(id);
    });
    await this.subscriber.subscribe(CANCEL_CHANNEL);
    const beat = () =>
      void this.store
        .beat({ name: this.options.name, at: Date.now(), engines: this.engines.status() })
        .catch(() => undefined);
    beat();
    this.beat = setInterval(beat, BEAT_MS);
    this.engines.on("available", beat); // a ready or freed engine shows at once
    this.worker = new Worker<JobData>(QUEUE_NAME, (job, token) => this.process(job, token), {
      connection: this.connection,
      concurrency: this.engines.status().length,
      lockDuration: this.options.lockMs,
      stalledInterval: this.options.lockMs,
      // Our own attempts count decides when to give up; BullMQ's limit only has to be above it.
      maxStalledCount: this.maxAttempts + 1,
      autorun: false,
      name: this.options.name,
    });
    this.worker.on("error", (err) => this.options.log?.("warn", `worker: ${err.message}`));
    const run = () => {
      if (this.engines.status().some((s) => s.state === "idle") && this.worker && !this.worker.isRunning()) {
        this.engines.off("available", run);
        void this.worker.run();
        this.options.log?.("info", `worker ${this.options.name}: taking jobs`);
      }
    };
    this.engines.on("available", run);
    run();
  }

  /** Generations this worker is running now. */
  runningCount(): number {
    return this.running.size;
  }

  /**
   * Stops taking jobs and gives running ones `graceMs` to finish; the rest go back to the queue
   * (for another worker, or this one after its restart).
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    const worker = this.worker;
    if (worker) {
      const closing = worker.close();
      const end = Date.now() + graceMs;
      while (this.running.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      await this.engines.stop(); // what still runs ends as shutting_down and is requeued
      for (const giveUp of this.waiting) giveUp();
      await closing;
    } else await this.engines.stop();
    if (this.beat) clearInterval(this.beat);
    await this.store.forgetWorker(this.options.name).catch(() => undefined);
  }

  private async process(job: Job<JobData>, token?: string): Promise<void> {
    const id = job.data.generationId;
    let g = await this.store.get(id);
    if (!g || FINAL.includes(g.status)) return; // cancelled while queued, or already done
    if (g.status === "processing") {
      // The worker that ran it died (its lock lapsed).
      if (g.attempts >= this.maxAttempts) {
        await this.finish(g, "failed", failure(generationError("worker_lost", { attempts: g.attempts })));
        return;
      }
      this.options.log?.("warn", `generation ${id}: its worker stopped mid-run; running it again`);
      await this.store.apply(
        id,
        [],
        { status: "queued" },
        {
          name: "media_generation_queued",
          data: queuedData(g, 0, true),
        },
      );
    }
    this.running.add(id);
    try {
      for (;;) {
        const claimed = await this.store.apply(id, ["queued"], {
          status: "processing",
          attempts: g.attempts + 1,
          startedAt: Date.now(),
          step: 0,
        });
        if (!claimed.applied) return; // cancelled meanwhile
        g = (await this.store.get(id)) as Generation;
        if (g.cancelRequested) {
          await this.finish(g, "cancelled", failure(generationError("cancelled")));
          return;
        }
        // The stored original, decoded for the engine into this job's tmp dir (gone when it ends).
        let input: EngineInput;
        try {
          input = await engineInput(this.files, g);
        } catch (err) {
          if (!(err instanceof InputUnavailable)) throw err;
          this.options.log?.("warn", `generation ${id}: ${err.message} (file store ${this.files.location})`);
          await this.finish(
            g,
            "failed",
            failure({ code: err.code, message: `${err.message} (worker ${this.options.name})` }),
          );
          return;
        }
        g = (await this.store.get(id)) as Generation;
        if (g.cancelRequested) {
          await this.files.removeTmp(id);
          await this.finish(g, "cancelled", failure(generationError("cancelled")));
          return;
        }
        const outcome = await this.runOnEngine(g, input);
        g = (await this.store.get(id)) as Generation;
        if (outcome.kind === "result" && g.cancelRequested) {
          // The cancel was answered 200 before the last step ended: it is honoured, the image dropped.
          await this.files.removeTmp(id);
          await this.finish(g, "cancelled", failure(generationError("cancelled")));
          return;
        }
        if (outcome.kind === "result") {
          await this.complete(g, outcome.image, outcome.timings);
          return;
        }
        const { code, message } = outcome;
        await this.files.removeTmp(id);
        if (code === "cancelled" || (g.cancelRequested && code === "engine_crashed")) {
          await this.finish(g, "cancelled", failure(generationError("cancelled")));
          return;
        }
        if (code === "shutting_down" || (this.stopping && code === "engine_crashed")) {
          // This worker is stopping: the generation goes back to the queue, this run not counted.
          await this.store.apply(id, [], {
            status: "queued",
            startedAt: null,
            step: 0,
            attempts: Math.max(0, g.attempts - 1),
          });
          await job.moveToWait(token);
          throw new WaitingError();
        }
        if (code === "engine_crashed" && g.attempts < this.maxAttempts) {
          this.options.log?.("warn", `generation ${id}: ${message}; retrying (attempt ${g.attempts + 1})`);
          await this.store.apply(
            id,
            [],
            { status: "queued", startedAt: null, step: 0 },
            {
              name: "media_generation_queued",
              data: queuedData(g, 0, true),
            },
          );
          continue;
        }
        await this.finish(
          g,
          "failed",
          failure(generationError(code, { reason: message, retries: g.attempts - 1 })),
        );
        return;
      }
    } finally {
      this.running.delete(id);
    }
  }

  /** Runs one attempt on the first idle engine, writing its events in order as they come. */
  private runOnEngine(g: Generation, input: EngineInput): Promise<Outcome> {
    const id = g.id;
    let writes = Promise.resolve();
    let lastStepAt = Date.now();
    const write = (f: () => Promise<unknown>) => {
      writes = writes.then(f).then(
        () => undefined,
        (err: Error) =>
          this.options.log?.("warn", `generation ${id}: writing progress failed: ${err.message}`),
      );
    };
    return new Promise<Outcome>((resolve) => {
      const end = (o: Outcome) => void writes.then(() => resolve(o));
      const listener: JobListener = {
        started: (m) => {
          lastStepAt = Date.now();
          write(() =>
            this.store.apply(
              id,
              [],
              { width: m.width, height: m.height, totalSteps: g.params.num_inference_steps },
              { name: "media_generation_started", data: startedData(g, m) },
            ),
          );
        },
        progress: (m) => {
          const now = Date.now();
          this.metrics.stepSeconds.observe((now - lastStepAt) / 1000);
          lastStepAt = now;
          write(async () => {
            if (m.preview) await this.store.setPreview(id, Buffer.from(m.preview.data, "base64"));
            await this.store.apply(
              id,
              [],
              { step: m.step, totalSteps: m.total_steps },
              { name: "media_generation_progress", data: progressData(id, m) },
            );
          });
        },
        result: (m) => end({ kind: "result", image: m.images[0], timings: m.timings_ms }),
        error: (m) => end({ kind: "error", code: m.code, message: m.message }),
      };
      const msg = jobMessage(g, input, path.resolve(this.files.tmpDirFor(id)));
      const tryRun = () => {
        if (!this.engines.run(msg, listener)) return;
        this.engines.off("available", tryRun);
        this.waiting.delete(giveUp);
      };
      const giveUp = () => {
        this.engines.off("available", tryRun);
        this.waiting.delete(giveUp);
        end({ kind: "error", code: "shutting_down", message: "the worker is stopping" });
      };
      if (this.stopping) return giveUp();
      this.waiting.add(giveUp);
      this.engines.on("available", tryRun);
      tryRun();
    });
  }

  private async complete(
    g: Generation,
    image: { path: string; width: number; height: number } | undefined,
    engineTimings: Record<string, number>,
  ): Promise<void> {
    try {
      if (!image) throw new Error("the engine returned no image");
      const r = await storeResult(this.files, g, image, engineTimings);
      await this.files.removeTmp(g.id);
      this.metrics.inferenceSeconds.observe((engineTimings.total ?? 0) / 1000);
      await this.finish(g, "succeeded", {
        resultFile: r.resultFile,
        width: r.width,
        height: r.height,
        timings: r.timings,
        resultHash: r.resultHash,
      });
    } catch (err) {
      await this.files.removeTmp(g.id);
      const full = err instanceof ApiError && err.code === "storage_full";
      await this.finish(
        g,
        "failed",
        failure(
          full
            ? generationError("storage_full", { reason: (err as Error).message })
            : generationError("encode_failed", { reason: String(err) }),
        ),
      );
    }
  }

  private async finish(
    g: Generation,
    status: "succeeded" | "failed" | "cancelled",
    fields: Partial<Generation>,
  ): Promise<void> {
    const now = Date.now();
    const done: Generation = { ...g, ...fields, status, completedAt: now, cancelRequested: false };
    await this.store.apply(
      g.id,
      [],
      { ...fields, status, completedAt: now, cancelRequested: false },
      { name: "media_generation_completed", data: completedData(done, resultUrlPath(done)) },
    );
    this.metrics.jobs.inc({ status });
    this.metrics.jobSeconds.observe((now - g.enqueuedAt) / 1000, { status });
    if (status === "failed") this.metrics.errors.inc({ code: String(fields.errorCode ?? "unknown") });
  }
}

/** A generation's error_code and error_message as its fields. */
function failure(e: { code: GenerationErrorCode; message: string }): Partial<Generation> {
  return { errorCode: e.code, errorMessage: e.message };
}
