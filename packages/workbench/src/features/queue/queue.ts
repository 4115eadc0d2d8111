// The queue controller: this caller's queued and processing generations (GET /api/ai/queue),
// polled while the page is open (often while any is active), with what the tab title says.
import type { Generation } from "@kontext/client";
import { Store, type Timers } from "../../app/store.js";
import { type GenerationProgress, isFinal } from "../run/progress.js";
import type { Api } from "../session/api.js";

export const BUSY_POLL_MS = 1500;
export const IDLE_POLL_MS = 8000;

export interface QueueState {
  items: Generation[];
  error: string | null;
}

export interface QueueRow {
  id: string;
  prompt: string;
  phase: "queued" | "processing";
  queuePosition: number | null;
  step: number;
  totalSteps: number | null;
}

/** The server's list, with the live progress of those the page follows. */
export function queueRows(
  items: readonly Generation[],
  tracked: Readonly<Record<string, GenerationProgress>>,
): QueueRow[] {
  const rows: QueueRow[] = [];
  for (const g of items) {
    const p = tracked[g.generation_id];
    if (p && isFinal(p)) continue; // finished since the last poll
    const phase = p
      ? (p.phase as "queued" | "processing")
      : g.status === "processing"
        ? "processing"
        : "queued";
    rows.push({
      id: g.generation_id,
      prompt: g.prompt,
      phase,
      queuePosition: phase === "queued" ? (p?.queuePosition ?? g.queue_position) : null,
      step: p ? Math.max(p.step, g.step) : g.step,
      totalSteps: p?.totalSteps ?? (g.total_steps || null),
    });
  }
  return rows;
}

/** The tab's title: "(2) Step 3/28 · Kontext workbench" while anything runs. */
export function tabTitle(rows: readonly QueueRow[], base = "Kontext workbench"): string {
  if (rows.length === 0) return base;
  const running = rows.find((r) => r.phase === "processing");
  const what = running
    ? running.totalSteps
      ? `Step ${running.step}/${running.totalSteps}`
      : "Starting"
    : `Queued`;
  return `(${rows.length}) ${what} · ${base}`;
}

export class Queue extends Store<QueueState> {
  private timer: unknown = null;
  private stopped = false;
  private loop = 0;

  constructor(
    private readonly api: Pick<Api, "active">,
    private readonly timers: Timers,
  ) {
    super({ items: [], error: null });
  }

  async poll(): Promise<void> {
    try {
      this.update({ items: await this.api.active(), error: null });
    } catch (err) {
      this.update({ error: (err as Error).message });
    }
  }

  /** Polls now and then on: fast while anything is active. */
  start(): void {
    this.stopped = false;
    const mine = ++this.loop;
    const tick = async () => {
      await this.poll();
      if (this.stopped || mine !== this.loop) return;
      this.timer = this.timers.setTimeout(tick, this.state.items.length > 0 ? BUSY_POLL_MS : IDLE_POLL_MS);
    };
    void tick();
  }

  /** Something was submitted or finished: look again now. */
  kick(): void {
    if (this.stopped) return;
    this.timers.clearTimeout(this.timer);
    this.start();
  }

  stop(): void {
    this.stopped = true;
    this.timers.clearTimeout(this.timer);
  }
}
