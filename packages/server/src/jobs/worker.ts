// A worker (KONTEXT_ROLE=worker, or `all` with Redis): takes generations from the BullMQ queue,
// one per local engine, runs them, stores the result in the shared file store and writes every
// state change and event to Redis. BullMQ holds a lock on each job while it runs; when a worker
// dies its locks lapse and another worker's stalled-job check hands the job to a live worker,
// which runs it again (attempts counts the runs; after `maxAttempts` it fails with a reason).
import { type Job, WaitingError, Worker } from "bullmq";
import type { Supervisor } from "../engine/supervisor.js";
import type { Metrics } from "../metrics.js";
import type { Redis } from "../redis/connection.js";
import type { FileStore } from "../storage/files.js";
import { type JobData, QUEUE_NAME } from "./bullmq-queue.js";
import { claimFields, onWorkerLost, type Policy } from "./lifecycle.js";
import { CANCEL_CHANNEL, type RedisRecords } from "./redis-records.js";
import { queuedData } from "./run.js";
import { finish, Runner, type RunRecords } from "./runner.js";
import { FINAL } from "./types.js";

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

export class JobWorker {
  private worker: Worker<JobData> | null = null;
  private readonly running = new Set<string>();
  private beat: NodeJS.Timeout | null = null;
  private stopping = false;
  private readonly maxAttempts: number;
  private readonly records: RunRecords;
  private readonly runner: Runner;

  /** `connection` is for BullMQ; `subscriber` receives cancellations. */
  constructor(
    private readonly store: RedisRecords,
    private readonly connection: Redis,
    private readonly subscriber: Redis,
    private readonly engines: Supervisor,
    private readonly files: FileStore,
    private readonly metrics: Metrics,
    private readonly options: WorkerOptions,
  ) {
    this.maxAttempts = options.maxAttempts ?? 2;
    this.records = store; // RedisRecords is a runner's records as it is
    this.runner = new Runner({
      records: this.records,
      files,
      engines,
      metrics,
      policy: () => this.policy(),
      where: `worker ${options.name}`,
      log: options.log,
    });
  }

  private policy(): Policy {
    return { maxAttempts: this.maxAttempts, stopping: this.stopping };
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
      this.runner.stop(); // runs still waiting for an engine go back to the queue
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
      const d = onWorkerLost(g, this.policy());
      if (d.kind === "finish") {
        await finish(this.records, this.metrics, g, d.status, d.fields);
        return;
      }
      if (d.kind !== "requeue") return;
      this.options.log?.("warn", `generation ${id}: its worker stopped mid-run; running it again`);
      await this.records.apply(id, [], d.fields, {
        name: "media_generation_queued",
        data: queuedData(g, 0, true),
      });
    }
    this.running.add(id);
    try {
      for (;;) {
        const claim = claimFields(g, Date.now());
        if (!(await this.store.apply(id, ["queued"], claim)).applied) return; // cancelled meanwhile
        const end = await this.runner.run({ ...g, ...claim });
        if (end.kind === "finished") return;
        g = end.generation;
        if (end.retry) continue; // its engine died: this worker runs it again
        // This worker is stopping: back to the queue (for another worker, or this one after its restart).
        await job.moveToWait(token);
        throw new WaitingError();
      }
    } finally {
      this.running.delete(id);
    }
  }
}
