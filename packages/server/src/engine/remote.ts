// The engines a gateway sees when it runs none itself (KONTEXT_ROLE=gateway, or `all` with Redis):
// every live worker's engines, from the status each worker writes to Redis every few seconds.
// /healthz, the models endpoint and admission read them as they read local engines; jobs reach
// them through the queue, never through run().
import { EventEmitter } from "node:events";
import type { EngineStatus, Engines } from "./supervisor.js";

/** Where workers' status beats are read from (the Redis job store). */
export interface WorkerBeats {
  workers(freshMs: number): Promise<{ name: string; engines: EngineStatus[] }[]>;
}

/** A worker silent this long is taken for gone. */
const FRESH_MS = 10_000;

export class RemoteEngines extends EventEmitter implements Engines {
  private engines: EngineStatus[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly store: WorkerBeats) {
    super();
  }

  async start(refreshMs = 2_000): Promise<this> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), refreshMs);
    this.timer.unref();
    return this;
  }

  private async refresh(): Promise<void> {
    try {
      const workers = await this.store.workers(FRESH_MS);
      this.engines = workers.flatMap((w) =>
        w.engines.map((e) => ({ ...e, device: `${e.device}@${w.name}` })),
      );
    } catch {
      // Redis is away: keep the last view until it is back
    }
  }

  status(): EngineStatus[] {
    return this.engines;
  }

  run(): boolean {
    return false;
  }

  cancel(): void {}

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
  }
}
