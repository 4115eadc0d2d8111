// The engine supervisor: one engine per configured device. It starts each engine, waits for
// `ready`, hands it one job at a time, and restarts it when it dies. A job running on an engine
// that dies ends with code `engine_crashed`; the job queue decides whether to retry it.
import { EventEmitter } from "node:events";
import type { GenerationErrorCode } from "../errors.js";
import type { EngineCommand } from "./process.js";
import { EngineProcess } from "./process.js";
import type {
  EngineEnvironment,
  FromEngine,
  JobMessage,
  ModelInfo,
  ProgressMessage,
  ResultMessage,
  StartedMessage,
} from "./protocol.js";
import { errorForClients, type ProtocolError } from "./protocol.js";

export type EngineState = "starting" | "idle" | "busy" | "failed" | "stopped";

export interface EngineStatus {
  index: number;
  device: string;
  state: EngineState;
  pid: number | null;
  model: ModelInfo | null;
  dtype: string | null;
  precision: string | null;
  compiled: boolean | null;
  safetyChecker: boolean | null;
  /** torch, CUDA build, driver, GPU, attention kernel (from `ready`; null before, or from an older engine) */
  environment: EngineEnvironment | null;
  jobId: string | null;
  restarts: number;
  /** Why the engine is not ready (fatal message or exit), when it is not. */
  problem: string | null;
}

export interface JobListener {
  started(m: StartedMessage): void;
  progress(m: ProgressMessage): void;
  result(m: ResultMessage): void;
  /** The job ended without a result; code `engine_crashed` when the engine died under it. */
  error(m: { code: GenerationErrorCode; message: string }): void;
}

/** What the job queue and the API need from the engines; tests may pass their own. */
export interface Engines {
  status(): EngineStatus[];
  /** Hands the job to an idle engine; false when none is idle. */
  run(job: JobMessage, listener: JobListener): boolean;
  cancel(jobId: string): void;
  on(event: "available", cb: () => void): unknown;
  on(event: "restart", cb: (s: EngineStatus) => void): unknown;
  off(event: "available", cb: () => void): unknown;
  stop(): Promise<void>;
}

export interface SupervisorOptions {
  devices: string[];
  command: (device: string | null) => EngineCommand;
  readyTimeoutMs: number;
  restartDelayMs: number;
  log?: (level: "info" | "warn" | "error", msg: string) => void;
}

const MAX_BACKOFF_MS = 60_000;

/**
 * The job queues pass only a result's `timings_ms` on to storeResult (jobs/run.ts), so the
 * prompt's token counts ride along in it under `prompt_tokens`; storeResult takes them out again.
 */
function withPromptTokens(m: ResultMessage): ResultMessage {
  if (!m.prompt_tokens) return m;
  const timings = { ...m.timings_ms, prompt_tokens: m.prompt_tokens } as unknown as Record<string, number>;
  return { ...m, timings_ms: timings };
}

class EngineSlot {
  proc: EngineProcess | null = null;
  state: EngineState = "starting";
  ready: {
    model: ModelInfo;
    dtype: string;
    precision: string;
    compiled: boolean;
    safetyChecker: boolean;
    device: string;
    environment: EngineEnvironment | null;
  } | null = null;
  job: { id: string; listener: JobListener } | null = null;
  restarts = 0;
  problem: string | null = null;
  backoff: number;
  private readyTimer: NodeJS.Timeout | null = null;
  private restartTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly index: number,
    readonly device: string | null,
    private readonly sup: Supervisor,
    private readonly opts: SupervisorOptions,
  ) {
    this.backoff = opts.restartDelayMs;
  }

  start(): void {
    this.state = "starting";
    this.ready = null;
    const proc = new EngineProcess(this.opts.command(this.device));
    this.proc = proc;
    this.readyTimer = setTimeout(() => {
      this.problem = `no ready message after ${this.opts.readyTimeoutMs} ms`;
      this.log("error", this.problem);
      proc.kill("SIGKILL");
    }, this.opts.readyTimeoutMs);
    proc.on("message", (m) => this.onMessage(m));
    proc.on("protocolError", (e) => this.onProtocolError(e));
    proc.on("log", (line) => this.log("info", line));
    proc.on("exit", ({ code, signal }) => this.onExit(proc, code, signal));
  }

  private log(level: "info" | "warn" | "error", msg: string): void {
    this.opts.log?.(level, `engine ${this.index}${this.device ? ` (${this.device})` : ""}: ${msg}`);
  }

  private onMessage(m: FromEngine): void {
    switch (m.type) {
      case "ready":
        if (this.readyTimer) clearTimeout(this.readyTimer);
        this.ready = {
          model: m.model,
          dtype: m.dtype,
          precision: m.precision,
          compiled: m.compiled,
          safetyChecker: m.safety_checker,
          device: m.device,
          environment: m.environment ?? null,
        };
        this.state = "idle";
        this.problem = null;
        this.backoff = this.opts.restartDelayMs;
        this.log(
          "info",
          `ready: ${m.model.name} (${m.model.variant}${m.model.demo ? ", demo" : ""}) on ${m.device}`,
        );
        this.sup.emit("available");
        return;
      case "fatal":
        this.problem = `${m.code}: ${m.message}`;
        this.log("error", `fatal ${this.problem}`);
        return;
      case "health":
        return;
      case "started":
        if (this.job?.id === m.job_id) this.job.listener.started(m);
        return;
      case "progress":
        if (this.job?.id === m.job_id) this.job.listener.progress(m);
        return;
      case "result":
        if (this.job?.id === m.job_id) this.finish((l) => l.result(withPromptTokens(m)));
        return;
      case "error":
        if (m.job_id !== null && this.job?.id === m.job_id) {
          if (!["cancelled", "shutting_down"].includes(m.code))
            this.log("warn", `job ${m.job_id} failed: ${m.code}: ${m.message}`);
          const shown = { ...m, ...errorForClients(m) };
          this.finish((l) => l.error(shown));
        } else this.log("warn", `engine refused a message: ${m.code}: ${m.message}`);
        return;
    }
  }

  /**
   * A line the gateway cannot read is logged; when it was the running job's result or error, that
   * job can no longer end by itself, so it fails now (`internal`, the problem named) instead of
   * waiting forever: an engine and a gateway of different versions, or a schema not updated.
   */
  private onProtocolError(e: ProtocolError): void {
    this.log("warn", `protocol error from engine: ${e.message}`);
    if (!this.job || e.jobId !== this.job.id || (e.type !== "result" && e.type !== "error")) return;
    const message = `the engine's ${e.type} message could not be read: ${e.message}`;
    this.finish((l) => l.error({ code: "internal", message }));
  }

  private finish(report: (l: JobListener) => void): void {
    const job = this.job;
    this.job = null;
    if (this.state === "busy") this.state = "idle";
    if (job) report(job.listener);
    this.sup.emit("available");
  }

  private onExit(proc: EngineProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.readyTimer) clearTimeout(this.readyTimer);
    if (proc !== this.proc) return;
    const how = signal ? `signal ${signal}` : `status ${code}`;
    const tail = proc.recentLog(3);
    if (this.state !== "stopped") {
      // /healthz shows the problem; its log lines (paths, tracebacks) go only to the server's log.
      if (!this.problem || this.ready) this.problem = `exited with ${how}`;
      this.log("error", `engine (pid ${proc.pid}) exited with ${how}${tail ? `; last log: ${tail}` : ""}`);
    }
    const job = this.job;
    this.job = null;
    this.proc = null;
    if (job) {
      job.listener.error({
        code: "engine_crashed",
        message: `the engine exited with ${how} while running this job`, // no pid: clients see it
      });
    }
    if (this.state === "stopped") return;
    const wasReady = this.ready !== null;
    this.ready = null;
    this.state = wasReady ? "starting" : "failed";
    const delay = wasReady ? this.opts.restartDelayMs : this.backoff;
    if (!wasReady) this.backoff = Math.min(this.backoff * 2 || 1000, MAX_BACKOFF_MS);
    this.restarts++;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.state === "stopped") return;
      this.start();
      this.sup.emit("restart", this.status());
    }, delay);
  }

  run(job: JobMessage, listener: JobListener): void {
    this.job = { id: job.job_id, listener };
    this.state = "busy";
    this.proc?.send(job);
  }

  status(): EngineStatus {
    return {
      index: this.index,
      // The configured device: an engine for cuda:N sees its GPU as cuda:0 (engineDevice).
      device: this.device ?? this.ready?.device ?? "default",
      state: this.state,
      pid: this.proc?.pid ?? null,
      model: this.ready?.model ?? null,
      dtype: this.ready?.dtype ?? null,
      precision: this.ready?.precision ?? null,
      compiled: this.ready?.compiled ?? null,
      safetyChecker: this.ready?.safetyChecker ?? null,
      environment: this.ready?.environment ?? null,
      jobId: this.job?.id ?? null,
      restarts: this.restarts,
      problem: this.problem,
    };
  }

  async stop(): Promise<void> {
    this.state = "stopped";
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.readyTimer) clearTimeout(this.readyTimer);
    await this.proc?.shutdown();
  }

  kill(): void {
    this.proc?.kill("SIGKILL");
  }
}

export class Supervisor extends EventEmitter implements Engines {
  private readonly slots: EngineSlot[];

  constructor(opts: SupervisorOptions) {
    super();
    const devices = opts.devices.length > 0 ? opts.devices : [null];
    this.slots = devices.map((d, i) => new EngineSlot(i, d, this, opts));
  }

  start(): this {
    for (const s of this.slots) s.start();
    return this;
  }

  status(): EngineStatus[] {
    return this.slots.map((s) => s.status());
  }

  run(job: JobMessage, listener: JobListener): boolean {
    const slot = this.slots.find((s) => s.state === "idle");
    if (!slot) return false;
    slot.run(job, listener);
    return true;
  }

  cancel(jobId: string): void {
    for (const s of this.slots)
      if (s.job?.id === jobId) s.proc?.send({ v: 1, type: "cancel", job_id: jobId });
  }

  /** For fault tests and operators: SIGKILL engine `index` (the supervisor restarts it). */
  killEngine(index: number): void {
    this.slots[index]?.kill();
  }

  async stop(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.stop()));
  }
}
