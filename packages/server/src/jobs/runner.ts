// The one runner: drives a claimed generation through one run on an engine, asking the lifecycle
// (lifecycle.ts) what each happening means and writing the answer through its backend's records.
// The embedded queue (sqlite-queue.ts) and the Redis worker (worker.ts) both run generations
// here; they differ only in how they claim one and what they do when it goes back to the queue.
import path from "node:path";
import type { AppliedLora, ResultImage } from "../engine/protocol.js";
import type { Engines, JobListener } from "../engine/supervisor.js";
import { type GenerationErrorCode, generationError } from "../errors.js";
import type { Metrics } from "../metrics.js";
import type { FileStore } from "../storage/files.js";
import { resultUrlPath } from "./job-queue.js";
import {
  beforeRun,
  type Decision,
  finalFields,
  finished,
  inputUnavailable,
  onEngineError,
  onResult,
  onStored,
  onStoreFailed,
  type Patch,
  type Policy,
  progressFields,
  startedFields,
} from "./lifecycle.js";
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
import type { EventName, Generation, StoredEvent } from "./types.js";

/** What the runner needs of a backend's records: operations by their meaning. */
export interface RunRecords {
  get(id: string): Promise<Generation | null>;
  /**
   * Writes `fields` (only while the status is one of `expect`; any when empty) and appends `event`
   * with them, atomically, and publishes the event. `applied` is false when the status did not match.
   */
  apply(
    id: string,
    expect: readonly Status[],
    fields: Patch,
    event?: { name: EventName; data: Record<string, unknown> },
  ): Promise<{ applied: boolean; event: StoredEvent | null }>;
  /** Keeps the latest progress preview (JPEG) of a processing generation. */
  setPreview(id: string, jpeg: Buffer): Promise<void>;
  /** Where a generation put back in the queue now stands (0: it runs next). */
  positionIfQueued(g: Generation): Promise<number>;
}
type Status = Generation["status"];

/** How one run ended: the generation finished (any final status), or it went back to the queue. */
export type RunEnd =
  | { kind: "finished"; generation: Generation }
  | { kind: "requeued"; retry: boolean; generation: Generation };

export interface RunnerOptions {
  records: RunRecords;
  files: FileStore;
  engines: Engines;
  metrics: Metrics;
  /** The lifecycle's policy as it is now (stopping changes at shutdown). */
  policy: () => Policy;
  /** Where failures are logged ("worker X" on a worker); ids are added by the runner. */
  where?: string;
  log?: (level: "info" | "warn" | "error", msg: string) => void;
}

type Outcome =
  | {
      kind: "result";
      image: ResultImage | undefined;
      timings: Record<string, number>;
      loras: AppliedLora[] | undefined;
    }
  | { kind: "error"; code: GenerationErrorCode; message: string };

export class Runner {
  /** Runs waiting for an idle engine: told to give up when the process stops. */
  private readonly waiting = new Set<() => void>();

  constructor(private readonly o: RunnerOptions) {}

  /** Gives up every run still waiting for an engine (it goes back to the queue, uncounted). */
  stop(): void {
    for (const giveUp of [...this.waiting]) giveUp();
  }

  /**
   * Runs `g`, already claimed (processing, its attempt counted), to its end: decodes its input,
   * runs it on the first idle engine, stores the result. `onEngine(true)` is called once the
   * engine has taken it (or once it ended before reaching one), `onEngine(false)` when the
   * engine's run is over.
   */
  async run(g: Generation, onEngine: (on: boolean) => void = () => undefined): Promise<RunEnd> {
    const { records, files } = this.o;
    let engineTaken = false;
    const taken = () => {
      if (!engineTaken) onEngine(true);
      engineTaken = true;
    };
    let input: EngineInput | null = null;
    try {
      try {
        input = await engineInput(files, g);
      } catch (err) {
        const e =
          err instanceof InputUnavailable
            ? { code: err.code, message: err.message }
            : {
                code: "input_missing" as const,
                message: generationError("input_missing", { reason: (err as Error).message }).message,
              };
        if (this.o.where)
          this.o.log?.("warn", `generation ${g.id}: ${e.message} (file store ${files.location})`);
        const message = this.o.where ? `${e.message} (${this.o.where})` : e.message;
        return await this.end(g, inputUnavailable(e.code, message));
      }
      g = (await records.get(g.id)) ?? g;
      const before = beforeRun(g, this.o.policy());
      if (before.kind !== "continue") return await this.end(g, before);

      const outcome = await this.runOnEngine(g, input, taken);
      onEngine(false);
      g = (await records.get(g.id)) ?? g;
      if (outcome.kind === "error") {
        const d = onEngineError(g, outcome.code, outcome.message, this.o.policy());
        if (d.kind === "requeue" && d.retry)
          this.o.log?.(
            "warn",
            `generation ${g.id}: ${outcome.message}; retrying (attempt ${g.attempts + 1})`,
          );
        return await this.end(g, d);
      }
      const decided = onResult(g, outcome.image !== undefined);
      if (decided.kind !== "continue" || !outcome.image) return await this.end(g, decided);
      let stored: Decision;
      try {
        const r = await storeResult(files, g, outcome.image, outcome.timings);
        this.o.metrics.inferenceSeconds.observe((outcome.timings.total ?? 0) / 1000);
        stored = onStored({ ...r, loras: outcome.loras });
      } catch (err) {
        stored = onStoreFailed(err);
      }
      return await this.end(g, stored);
    } finally {
      input?.release(); // the engine has read them; the decoded copies stay for the next run on them
      taken();
    }
  }

  /** Carries out a final or requeue decision. */
  private async end(g: Generation, d: Decision): Promise<RunEnd> {
    await this.o.files.removeTmp(g.id); // before the end is announced: a finished run leaves no tmp files
    if (d.kind === "requeue") {
      const requeued = { ...g, ...d.fields } as Generation;
      const event = d.retry
        ? {
            name: "media_generation_queued" as const,
            data: queuedData(g, await this.o.records.positionIfQueued(requeued), true),
          }
        : undefined;
      await this.o.records.apply(g.id, [], d.fields, event);
      return { kind: "requeued", retry: d.retry, generation: requeued };
    }
    if (d.kind === "continue") throw new Error("a run cannot end on continue");
    const done = await finish(this.o.records, this.o.metrics, g, d.status, d.fields);
    return { kind: "finished", generation: done ?? finished(g, d.status, d.fields, Date.now()) };
  }

  /** One attempt on the first idle engine; its events are written in order as they come. */
  private runOnEngine(g: Generation, input: EngineInput | null, taken: () => void): Promise<Outcome> {
    const { records, engines, metrics } = this.o;
    const id = g.id;
    let writes = Promise.resolve();
    let lastStepAt = Date.now();
    const write = (f: () => Promise<unknown>) => {
      writes = writes.then(f).then(
        () => undefined,
        (err: Error) => this.o.log?.("warn", `generation ${id}: writing progress failed: ${err.message}`),
      );
    };
    return new Promise<Outcome>((resolve) => {
      const end = (o: Outcome) => void writes.then(() => resolve(o));
      const listener: JobListener = {
        started: (m) => {
          lastStepAt = Date.now();
          write(() =>
            records.apply(id, [], startedFields(g, m.width, m.height), {
              name: "media_generation_started",
              data: startedData(g, m),
            }),
          );
        },
        progress: (m) => {
          const now = Date.now();
          metrics.stepSeconds.observe((now - lastStepAt) / 1000);
          lastStepAt = now;
          write(async () => {
            if (m.preview) await records.setPreview(id, Buffer.from(m.preview.data, "base64"));
            await records.apply(id, [], progressFields(m.step, m.total_steps), {
              name: "media_generation_progress",
              data: progressData(id, m),
            });
          });
        },
        result: (m) => end({ kind: "result", image: m.images[0], timings: m.timings_ms, loras: m.loras }),
        error: (m) => end({ kind: "error", code: m.code, message: m.message }),
      };
      const msg = jobMessage(g, input, path.resolve(this.o.files.tmpDirFor(id)));
      const done = () => {
        engines.off("available", tryRun);
        this.waiting.delete(giveUp);
      };
      const tryRun = () => {
        if (!engines.run(msg, listener)) return;
        done();
        taken();
      };
      const giveUp = () => {
        done();
        end({ kind: "error", code: "shutting_down", message: "the queue is stopping" });
      };
      if (this.o.policy().stopping) return giveUp();
      this.waiting.add(giveUp);
      engines.on("available", tryRun);
      tryRun();
    });
  }
}

/**
 * Writes a final status with its completed event, counts it, and returns the generation as
 * written (what waiters get: no read-back); null when its status was not one of `expect`. Used by
 * the runner and by a backend's cancel of a queued generation.
 */
export async function finish(
  records: RunRecords,
  metrics: Metrics | null,
  g: Generation,
  status: "succeeded" | "failed" | "cancelled",
  fields: Patch,
  expect: readonly Status[] = [],
): Promise<Generation | null> {
  const now = Date.now();
  const done = finished(g, status, fields, now);
  const r = await records.apply(g.id, expect, finalFields(status, fields, now), {
    name: "media_generation_completed",
    data: completedData(done, resultUrlPath(done)),
  });
  if (!r.applied) return null;
  metrics?.jobs.inc({ status });
  metrics?.jobSeconds.observe((now - g.enqueuedAt) / 1000, { status });
  if (status === "failed") metrics?.errors.inc({ code: String(fields.errorCode ?? "unknown") });
  return done;
}
